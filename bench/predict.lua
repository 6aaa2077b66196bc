-- wrk script: POST /predict with a JSON body.
wrk.method = "POST"
wrk.body = '{"input": "my cat sleeps on the warm laptop"}'
wrk.headers["Content-Type"] = "application/json"
