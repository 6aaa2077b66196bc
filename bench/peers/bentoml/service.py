"""The pet text classifier as a BentoML service with a batchable API.

    cd bench/peers/bentoml && PEER_MODEL_PATH=... PEER_TRUSTED_TYPES='[]' \
        .venv/bin/bentoml serve service:PetTextClassifier --host 127.0.0.1 --port 8015

POST /classify {"inputs": ["<text>"]} answers [{"class": ..., "confidence": ...}], one
item per text. The API is batchable: each worker's dispatcher merges the lists of
concurrent requests into one call of classify(), sized and timed by BentoML's adaptive
batching, and splits the result back.

Self-contained: it runs in the peer's own venv, which has no project package.
PEER_MODEL_PATH is the artifact, PEER_TRUSTED_TYPES the JSON list of the project's
TRUSTED_TYPES; bench/peers/servers.py sets both.
"""

import json
import os
import sys

import bentoml
import sklearn
import skops.io

# Set by `servers.py check` only: one line per model call shows that batching happens.
LOG_BATCHES = os.environ.get("PEER_LOG_BATCHES") == "1"


# 2 worker processes, as the FastAPI peer's 2 uvicorn workers and each predictor
# replica's 2 gunicorn workers: the machine has 2 cores, and one worker per core is what
# BentoML's docs advise for CPU-bound models (workers="cpu_count" would say the same here,
# but a fixed number keeps the benchmark's stacks alike on a bigger machine).
# Access logs are on by default in BentoML; said here because ours writes one per request.
@bentoml.service(workers=2, logging={"access": {"enabled": True}})
class PetTextClassifier:
    """Class and confidence of each text, as predictor_service computes them."""

    def __init__(self) -> None:
        trusted = json.loads(os.environ["PEER_TRUSTED_TYPES"])
        self.pipeline = skops.io.load(os.environ["PEER_MODEL_PATH"], trusted=trusted)
        self.classes = [str(label) for label in self.pipeline.classes_]

    # At most 32 texts a call, as the other peers. BentoML answers 503 to a request it
    # expects to finish after max_latency_ms, so the limit is far above any latency of
    # the benchmark (the default, 60 s, said here on purpose): under a load of 64
    # connections, a tighter one sheds requests instead of queueing them as ours does.
    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=60_000)
    def classify(self, inputs: list[str]) -> list[dict]:
        """Classify texts in one model call; one {"class", "confidence"} per text."""
        if LOG_BATCHES:
            print(f"peer batch: {len(inputs)} texts", file=sys.stderr, flush=True)
        # The same model call as predictor_service.model.TextClassifier.predict, so
        # that the benchmark compares the servers, not two ways of calling the model.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            probabilities = self.pipeline.predict_proba(inputs)
        best = probabilities.argmax(axis=1)
        # Python's round(), as predictor_service: numpy's can differ in the last digit.
        return [
            {"class": self.classes[index], "confidence": round(float(row[index]), 4)}
            for row, index in zip(probabilities, best, strict=True)
        ]
