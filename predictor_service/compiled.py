"""A fitted text pipeline's arithmetic, without scikit-learn's per-call machinery.

For one text, Pipeline.predict_proba spends nine tenths of its time around the
arithmetic: the FeatureUnion's joblib dispatch, input validation on every step (array
and dataframe checks), sparse matrices built, checked and stacked (measured: 2.8 ms for
one text, 0.3 ms here; docs/performance.md). CompiledPipeline reads the fitted
attributes of the shape train.build_pipeline() makes, a FeatureUnion of TfidfVectorizers
feeding a LogisticRegression, and computes the same probabilities: each vectorizer's own
analyzer, vocabulary and idf, then the same floating-point operations in the same
order, so that its probabilities equal the pipeline's bit for bit
(tests/predictor_service/test_compiled.py).

compile_pipeline() returns None, with the reason in the log, for any other shape; the
model then calls the pipeline itself, as it does with PREDICTOR_INFERENCE=pipeline.
"""

import logging
from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

log = logging.getLogger(__name__)

# Texts a compiled pipeline must answer as the pipeline does before it serves: none,
# words in and out of the vocabulary, case, accents, punctuation and runs of whitespace.
PROBE_TEXTS = (
    "", "warm-up", "my cat sleeps on the warm laptop", "zzqx vvkj",
    "Le CHAT  du voisin\n\tdort, déjà !!", "goldfish " * 40,
)


class NotCompilable(Exception):
    """The pipeline is not of a shape CompiledPipeline computes."""


@dataclass(frozen=True)
class Vectorizer:
    """One fitted TfidfVectorizer, as the arithmetic needs it."""

    analyze: object  # text -> its features, the vectorizer's own build_analyzer()
    vocabulary: dict  # feature -> column within this vectorizer
    idf: np.ndarray | None
    sublinear_tf: bool
    binary: bool
    norm: str | None
    offset: int  # its first column in the union's output

    @classmethod
    def of(cls, vectorizer, offset):
        if type(vectorizer) is not TfidfVectorizer:
            raise NotCompilable(f"a {type(vectorizer).__name__} in the union")
        if vectorizer.dtype is not np.float64 or vectorizer.norm not in ("l1", "l2", None):
            raise NotCompilable(f"dtype {vectorizer.dtype} and norm {vectorizer.norm!r}")
        return cls(vectorizer.build_analyzer(), vectorizer.vocabulary_,
                   vectorizer.idf_ if vectorizer.use_idf else None, vectorizer.sublinear_tf,
                   vectorizer.binary, vectorizer.norm, offset)

    def features(self, texts, width):
        """The nonzero TF-IDF values of texts, as (row * width + column, value), sorted."""
        get, keys = self.vocabulary.get, []
        for row, text in enumerate(texts):
            base = row * width + self.offset
            keys += [base + column for column in map(get, self.analyze(text))
                     if column is not None]
        # Counted per (row, column), in CountVectorizer's order: by row, then column.
        keys, counts = np.unique(np.array(keys, dtype=np.int64), return_counts=True)
        rows = keys // width
        values = np.ones(len(keys)) if self.binary else counts.astype(np.float64)
        # TfidfTransformer.transform, step by step.
        if self.sublinear_tf:
            np.log(values, values)
            values += 1.0
        if self.idf is not None:
            values *= self.idf[keys - rows * width - self.offset]
        if self.norm is not None:
            weights = values * values if self.norm == "l2" else np.abs(values)
            norms = np.bincount(rows, weights=weights, minlength=len(texts))
            if self.norm == "l2":
                norms = np.sqrt(norms)
            norms[norms == 0.0] = 1.0  # a row without features stays zero
            values /= norms[rows]
        return keys, values


class CompiledPipeline:
    """Pipeline([("features", FeatureUnion of TfidfVectorizers), ("classifier",
    LogisticRegression)]).predict_proba, computed directly."""

    def __init__(self, vectorizers, width, coef, intercept):
        self.vectorizers = vectorizers
        self.width = width
        self.coef_columns = np.ascontiguousarray(coef.T)  # (features, classes)
        self.intercept = intercept

    def predict_proba(self, texts):
        """The probability of each class for each text, as the pipeline gives them."""
        n = len(texts)
        keys, values = [], []
        for vectorizer in self.vectorizers:
            vectorizer_keys, vectorizer_values = vectorizer.features(texts, self.width)
            keys.append(vectorizer_keys)
            values.append(vectorizer_values)
        # The union's matrix in CSR order (a row's columns ascending) and, for the
        # classifier, each row's products summed in that order (scipy's CSR product).
        keys, values = np.concatenate(keys), np.concatenate(values)
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
        rows = keys // self.width
        coefs = self.coef_columns[keys - rows * self.width]
        scores = np.empty((n, coefs.shape[1]))
        for column in range(coefs.shape[1]):
            scores[:, column] = np.bincount(rows, weights=values * coefs[:, column], minlength=n)
        scores += self.intercept
        if scores.shape[1] == 1:  # two classes: LinearClassifierMixin._predict_proba_lr
            positive = expit(scores[:, 0])
            return np.vstack([1 - positive, positive]).T
        # sklearn.utils.extmath.softmax
        scores -= np.max(scores, axis=1).reshape((-1, 1))
        np.exp(scores, scores)
        scores /= np.sum(scores, axis=1).reshape((-1, 1))
        return scores


def compile_pipeline(pipeline):
    """Return a CompiledPipeline for pipeline, or None when it is of another shape."""
    try:
        features, classifier = _steps(pipeline)
        vectorizers, offset = [], 0
        for _, vectorizer in features.transformer_list:
            vectorizers.append(Vectorizer.of(vectorizer, offset))
            offset += len(vectorizer.vocabulary_)
    except NotCompilable as reason:
        log.info("the pipeline is not compiled (%s): it is called as it is", reason)
        return None
    return CompiledPipeline(vectorizers, offset, classifier.coef_, classifier.intercept_)


def _steps(pipeline):
    if type(pipeline) is not Pipeline or len(pipeline.steps) != 2:
        raise NotCompilable("not a pipeline of two steps")
    (_, features), (_, classifier) = pipeline.steps
    if type(features) is not FeatureUnion or features.transformer_weights:
        raise NotCompilable("its first step is not a FeatureUnion without weights")
    if type(classifier) is not LogisticRegression:
        raise NotCompilable(f"its classifier is a {type(classifier).__name__}")
    return features, classifier
