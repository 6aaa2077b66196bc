"""The pet text classifier as an MLServer custom runtime: one predict_proba per batch.

    cd bench/peers/mlserver && PEER_MODEL_PATH=... PEER_TRUSTED_TYPES='[]' \
        MLSERVER_HTTP_PORT=8012 MLSERVER_GRPC_PORT=8013 MLSERVER_METRICS_PORT=8014 \
        .venv/bin/mlserver start .

MLServer's adaptive batching (max_batch_size, max_batch_time in model-settings.json)
merges concurrent V2 requests in the main process, along the first axis of their "text"
input, and hands the merged request to one of its inference workers (parallel_workers in
settings.json), which runs predict() below once for all of them; MLServer then splits
the outputs back, one request's rows each.

Self-contained: it runs in the peer's own venv, which has no project package.
PEER_MODEL_PATH is the artifact, PEER_TRUSTED_TYPES the JSON list of the project's
TRUSTED_TYPES; bench/peers/servers.py sets both.
"""

import json
import os
import sys

import numpy as np
import sklearn
import skops.io
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse

INPUT = "text"
# Set by `servers.py check` only: one line per model call shows that batching happens.
LOG_BATCHES = os.environ.get("PEER_LOG_BATCHES") == "1"


class PetTextClassifier(MLModel):
    """Class and confidence of each text, as predictor_service computes them."""

    async def load(self) -> bool:
        """Load the artifact with skops, trusting only the project's TRUSTED_TYPES."""
        trusted = json.loads(os.environ["PEER_TRUSTED_TYPES"])
        self._pipeline = skops.io.load(os.environ["PEER_MODEL_PATH"], trusted=trusted)
        self._classes = [str(label) for label in self._pipeline.classes_]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Classify every text of the (merged) request in one model call."""
        texts = self._texts(payload)
        if LOG_BATCHES:
            print(f"peer batch: {len(texts)} texts", file=sys.stderr, flush=True)
        # The same model call as predictor_service.model.TextClassifier.predict, so
        # that the benchmark compares the servers, not two ways of calling the model.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            probabilities = self._pipeline.predict_proba(texts)
        best = probabilities.argmax(axis=1)
        labels = [self._classes[index] for index in best]
        # Python's round(), as predictor_service: numpy's can differ in the last digit.
        confidences = [
            round(float(row[index]), 4) for row, index in zip(probabilities, best, strict=True)
        ]
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[
                # One row per text: how MLServer splits a batch's outputs back.
                StringCodec.encode_output("class", labels, use_bytes=False),
                NumpyCodec.encode_output("confidence", np.array(confidences).reshape(-1, 1)),
            ],
        )

    def _texts(self, payload):
        for request_input in payload.inputs:
            if request_input.name == INPUT:
                return StringCodec.decode_input(request_input)
        raise MLServerError(f"expected an input named {INPUT!r}", status_code=400)
