"""The pet text classifier as a LitServe API with dynamic batching.

    cd bench/peers/litserve && PEER_MODEL_PATH=... PEER_TRUSTED_TYPES='[]' \
        .venv/bin/python server.py --port 8016

POST /predict {"input": "<text>"} answers {"class": ..., "confidence": ...}. The API
servers put each request on a queue; each inference worker takes up to max_batch_size
of them (waiting at most batch_timeout for more), runs predict() once on the list of
their texts, and sends one answer back per request.

Self-contained: it runs in the peer's own venv, which has no project package.
PEER_MODEL_PATH is the artifact, PEER_TRUSTED_TYPES the JSON list of the project's
TRUSTED_TYPES; bench/peers/servers.py sets both.
"""

import argparse
import json
import os
import sys

import litserve as ls
import sklearn
import skops.io

# Set by `servers.py check` only: one line per model call shows that batching happens.
LOG_BATCHES = os.environ.get("PEER_LOG_BATCHES") == "1"
# At most 32 texts a model call, as the other peers; a batch waits at most 2 ms for
# more requests, as ours (PREDICTOR_MAX_BATCH_WAIT_MS).
MAX_BATCH_SIZE = 32
BATCH_TIMEOUT_SECONDS = 0.002
# 2 inference worker processes on the CPU "device", as the FastAPI peer's 2 uvicorn
# workers and each predictor replica's 2 gunicorn workers: one per core of this 2-core
# machine, since the model holds the GIL while it runs. LitServe then starts as many API
# server (uvicorn) processes, its default and its docs' advice (num_api_servers=None).
WORKERS = 2


class PetTextClassifierAPI(ls.LitAPI):
    """Class and confidence of each text, as predictor_service computes them."""

    def setup(self, device):
        """Load the artifact with skops, trusting only the project's TRUSTED_TYPES."""
        trusted = json.loads(os.environ["PEER_TRUSTED_TYPES"])
        self.pipeline = skops.io.load(os.environ["PEER_MODEL_PATH"], trusted=trusted)
        self.classes = [str(label) for label in self.pipeline.classes_]

    def decode_request(self, request):
        """Take the text out of {"input": "<text>"}."""
        return request["input"]

    def predict(self, texts):
        """Classify a batch of texts in one model call; one answer per text."""
        if LOG_BATCHES:
            print(f"peer batch: {len(texts)} texts", file=sys.stderr, flush=True)
        # The same model call as predictor_service.model.TextClassifier.predict, so
        # that the benchmark compares the servers, not two ways of calling the model.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            probabilities = self.pipeline.predict_proba(texts)
        best = probabilities.argmax(axis=1)
        # Python's round(), as predictor_service: numpy's can differ in the last digit.
        return [
            {"class": self.classes[index], "confidence": round(float(row[index]), 4)}
            for row, index in zip(probabilities, best, strict=True)
        ]

    def encode_response(self, output):
        """Answer one text's {"class", "confidence"} as it is."""
        return output


def main():
    """Serve on 127.0.0.1 at the port given, until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    api = PetTextClassifierAPI(max_batch_size=MAX_BATCH_SIZE, batch_timeout=BATCH_TIMEOUT_SECONDS)
    # fast_queue: ZeroMQ instead of multiprocessing queues between the API servers and
    # the workers, which LitServe's docs advise past 100 requests/s.
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=WORKERS, fast_queue=True)
    # Uvicorn's access log is on at log level "info", one line per request as ours; no
    # client.py written into this folder.
    server.run(host="127.0.0.1", port=args.port, log_level="info", generate_client_file=False)


if __name__ == "__main__":
    main()
