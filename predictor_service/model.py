"""The text classifier: its artifact on disk, and a per-worker holder of one loaded version."""

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sklearn
import skops.io

from servicekit.errors import ServiceError
from servicekit.metrics import child

from .compiled import PROBE_TEXTS, compile_pipeline
from .metrics import BATCH_SIZE, MODEL_CALL, MODEL_LOAD, PREDICTIONS

log = logging.getLogger(__name__)

# skops instantiates only the types it trusts by default (scikit-learn's estimators,
# numpy and scipy types, builtins) and those listed here; it refuses anything else, a
# function such as os.system say, so a tampered artifact cannot run arbitrary code the
# way a pickle can. Its defaults cover everything train.build_pipeline() makes, so this
# list is empty: a pipeline that needs more names the extra types here, after review.
TRUSTED_TYPES = []


class ModelNotReady(ServiceError):
    """The model is still loading, or failed to load: 503 until it is ready."""

    status = 503

    def __init__(self, reason):
        super().__init__(f"Model is not ready: {reason}")


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    input_length: int

    @property
    def message(self):
        return f"Predicted class: {self.label} with {self.confidence:.1%} confidence"


def metadata_path(artifact_path):
    """Return where the metadata of an artifact lives: beside it, as JSON."""
    return Path(artifact_path).with_suffix(".json")


class TextClassifier:
    """A fitted scikit-learn pipeline and the metadata it was trained with.

    compiled: compute the pipeline's probabilities with compiled.py (the same figures,
    a fraction of the overhead) when its shape allows and it agrees with the pipeline on
    PROBE_TEXTS; otherwise, or when False, call the pipeline itself.
    """

    def __init__(self, pipeline, metadata, compiled=True):
        self.pipeline = pipeline
        self.metadata = metadata
        self.classes = [str(label) for label in pipeline.classes_]
        self.inference, self._predict_proba = "pipeline", self._pipeline_proba
        if compiled:
            candidate = compile_pipeline(pipeline)
            if candidate is not None and self._agrees(candidate):
                self.inference, self._predict_proba = "compiled", candidate.predict_proba

    @property
    def identity(self):
        return {"name": self.metadata["name"], "version": self.metadata["version"]}

    @classmethod
    def load(cls, artifact_path, compiled=True):
        """Load an artifact written by train.py, trusting skops' defaults and TRUSTED_TYPES."""
        pipeline = skops.io.load(artifact_path, trusted=TRUSTED_TYPES)
        metadata = json.loads(metadata_path(artifact_path).read_text(encoding="utf-8"))
        return cls(pipeline, metadata, compiled)

    def _pipeline_proba(self, texts):
        # The pipeline was validated when it was trained, and TF-IDF features are always
        # finite: skipping scikit-learn's checks takes 13 % off a call.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return self.pipeline.predict_proba(texts)

    def _agrees(self, compiled):
        """Whether compiled gives the pipeline's probabilities (to 1e-12) on PROBE_TEXTS."""
        texts = list(PROBE_TEXTS)
        if np.allclose(compiled.predict_proba(texts), self._pipeline_proba(texts),
                       rtol=0, atol=1e-12):
            return True
        log.warning("the compiled pipeline disagrees with the pipeline: the pipeline serves")
        return False

    def predict(self, texts):
        """Classify texts in one model call; one Prediction per text, in order."""
        probabilities = self._predict_proba(texts)
        best = probabilities.argmax(axis=1)
        return [
            Prediction(
                label=self.classes[index],
                confidence=round(float(row[index]), 4),
                input_length=len(text),
            )
            for text, row, index in zip(texts, probabilities, best, strict=True)
        ]


class ModelHolder:
    """One version in one worker: loaded once, off the request path (serving.py runs
    load() in its own thread), and warmed up by a prediction before it serves."""

    WARM_UP_INPUT = "warm-up"

    def __init__(self, artifact_path, batcher_factory=None, admission=None, compiled=True):
        self.artifact_path = Path(artifact_path)
        self.compiled = compiled  # TextClassifier's: compute with compiled.py when it can
        self.error = None
        self._model = None
        # With a batcher, concurrent predict() calls share model calls (batching.py).
        self._batcher = batcher_factory(self._predict_now) if batcher_factory else None
        # With an admission, a request past its bound is refused (admission.py); the
        # versions of one worker share one, since they share its CPU.
        self.admission = admission

    def load(self):
        """Load the artifact and warm it up; record the error instead of raising."""
        started = time.perf_counter()
        try:
            model = TextClassifier.load(self.artifact_path, self.compiled)
            model.predict([self.WARM_UP_INPUT])
        except Exception as exc:  # any failure leaves the worker alive but not ready
            # Clients see the artifact's name and the kind of failure; the server's paths
            # and the details go to the log only.
            self.error = f"could not load {Path(self.artifact_path).name}: {type(exc).__name__}"
            log.exception("could not load model from %s", self.artifact_path)
        else:
            self._model = model
            self.error = None
            MODEL_LOAD.set(time.perf_counter() - started)
            log.info("model %s loaded from %s (%s inference)", model.identity, self.artifact_path,
                     model.inference)

    def predict(self, texts):
        """Classify texts with the loaded model, batched with other requests if enabled;
        raise Overloaded when the worker has no room for them."""
        if self.admission is None:
            return self._predict_unbounded(texts)
        with self.admission.admit(texts):
            return self._predict_unbounded(texts)

    def _predict_unbounded(self, texts):
        if self._batcher is None:
            return self._predict_now(texts)
        return self._batcher.predict(texts)

    def _predict_now(self, texts):
        model = self.model
        started = time.perf_counter()
        predictions = model.predict(texts)
        MODEL_CALL.observe(time.perf_counter() - started)
        BATCH_SIZE.observe(len(texts))
        name, version = model.identity["name"], model.identity["version"]
        for label, count in Counter(prediction.label for prediction in predictions).items():
            child(PREDICTIONS, name, version, label).inc(count)
        return predictions

    @property
    def ready(self):
        return self._model is not None

    @property
    def model(self):
        """The loaded model; raise ModelNotReady until it has loaded and warmed up."""
        if self._model is None:
            raise ModelNotReady(self.error or "the model is still loading")
        return self._model
