"""The ceiling: a Flask app that does nothing (one fixed JSON answer: no model, no
validation), for docs/performance.md to say how close /predict comes to what this web
stack can do at all on these cores. bench/run.py runs it in the predictors' place, as
many replicas, under the predictor's own gunicorn settings (workers, threads, access
log, metrics: the app on the command line overrides only the conf's wsgi_app) and
behind the same Nginx configuration:

    PREDICTOR_BIND=127.0.0.1:8001 gunicorn -c predictor_service/gunicorn.conf.py bench.ceiling:app
"""

from flask import Flask

# What a prediction answer looks like, so that Nginx and the client move as many bytes.
ANSWER = (b'{"message":"Predicted class: cat with 75.3% confidence","model":{"name":'
          b'"pet-text-classifier","version":"1.0.0"},"prediction":{"class":"cat",'
          b'"confidence":0.7534,"input_length":32}}\n')

app = Flask(__name__)


@app.post("/predict")
def predict():
    """Answer every prediction alike, without reading it."""
    return app.response_class(ANSWER, mimetype="application/json")


@app.get("/health")
@app.get("/ready")
def health():
    """Alive and ready from the start: there is nothing to load."""
    return {"status": "ok"}
