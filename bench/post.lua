-- wrk script: POST the JSON body in the environment variable WRK_BODY, with the API key
-- in WRK_API_KEY when it is set.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("WRK_API_KEY")
if key then
    wrk.headers["X-API-Key"] = key
end
