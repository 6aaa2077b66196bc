"""The compiled pipeline (compiled.py): the pipeline's own probabilities, for the shapes it
knows, and the pipeline itself for any other."""

import logging
import random
import string

import numpy
import pytest
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from predictor_service import create_app, train
from predictor_service.compiled import compile_pipeline
from predictor_service.config import DEFAULT_REPOSITORY
from predictor_service.model import TextClassifier
from predictor_service.repository import Repository


def odd_texts(count=200, seed=7):
    """Texts the training data never shows: random letters, digits, accents, emoji,
    punctuation and whitespace runs, of 0 to 300 characters."""
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + string.punctuation + "  \t\néàüçßЖ猫🐈"
    return [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(300))) for _ in range(count)
    ]


@pytest.fixture(scope="module", params=list(train.RECIPES))
def shipped(request):
    """Each shipped version, loaded."""
    return TextClassifier.load(Repository(DEFAULT_REPOSITORY).artifact(request.param))


def test_each_shipped_version_is_compiled(shipped):
    assert shipped.inference == "compiled"


def test_compiled_probabilities_equal_the_pipelines_bit_for_bit(shipped):
    texts, _ = train.load_dataset()
    texts = texts + odd_texts() + ["", " ", "CAT", "cat " * 2000]
    compiled = compile_pipeline(shipped.pipeline)

    expected = shipped.pipeline.predict_proba(texts)  # scikit-learn's checks and all

    numpy.testing.assert_array_equal(compiled.predict_proba(texts), expected)
    for size in (1, 2, 7):  # batches: each text's row is its own, whatever it is batched with
        numpy.testing.assert_array_equal(compiled.predict_proba(texts[:size]), expected[:size])


def test_the_models_predictions_are_the_same_either_way(shipped):
    texts, _ = train.load_dataset()
    pipeline = TextClassifier(shipped.pipeline, shipped.metadata, compiled=False)

    assert pipeline.inference == "pipeline"
    assert shipped.predict(texts) == pipeline.predict(texts)


def fitted(features, classifier=None):
    texts, labels = train.load_dataset()
    return Pipeline([("features", features),
                     ("classifier", classifier or LogisticRegression(max_iter=500))]).fit(
        texts, labels)


@pytest.mark.parametrize("vectorizer", [
    TfidfVectorizer(norm="l1"),
    TfidfVectorizer(norm=None, use_idf=False),
    TfidfVectorizer(binary=True, analyzer="char", ngram_range=(1, 3)),
])
def test_other_tfidf_settings_are_computed_as_the_pipeline_does(vectorizer):
    pipeline = fitted(FeatureUnion([("only", vectorizer)]))
    texts = train.load_dataset()[0] + odd_texts(50)

    numpy.testing.assert_allclose(compile_pipeline(pipeline).predict_proba(texts),
                                  pipeline.predict_proba(texts), rtol=0, atol=1e-12)


def test_two_classes_are_computed_as_the_pipeline_does():
    texts, labels = train.load_dataset()
    binary = ["cat" if label == "cat" else "other" for label in labels]
    pipeline = Pipeline([("features", FeatureUnion([("words", TfidfVectorizer())])),
                         ("classifier", LogisticRegression())]).fit(texts, binary)

    numpy.testing.assert_allclose(compile_pipeline(pipeline).predict_proba(texts),
                                  pipeline.predict_proba(texts), rtol=0, atol=1e-12)


@pytest.mark.parametrize("features", [
    FeatureUnion([("counts", CountVectorizer())]),
    FeatureUnion([("words", TfidfVectorizer())], transformer_weights={"words": 2.0}),
])
def test_a_pipeline_of_another_shape_is_called_as_it_is(features, caplog):
    pipeline = fitted(features)
    caplog.set_level(logging.INFO, logger="predictor_service.compiled")

    assert compile_pipeline(pipeline) is None
    assert "is not compiled" in caplog.text
    model = TextClassifier(pipeline, {"name": "other", "version": "0"})
    assert model.inference == "pipeline"
    assert model.predict(["my cat sleeps"])[0].label == pipeline.predict(["my cat sleeps"])[0]


def test_a_compiled_pipeline_that_disagrees_is_not_used(monkeypatch, caplog):
    model = TextClassifier.load(Repository(DEFAULT_REPOSITORY).artifact(train.FIRST_PRODUCTION))
    compiled = compile_pipeline(model.pipeline)
    # An intercept that is no longer the classifier's, as a compiler bug would make.
    compiled.intercept = compiled.intercept + numpy.eye(len(model.classes))[0] * 1e-6
    monkeypatch.setattr("predictor_service.model.compile_pipeline", lambda pipeline: compiled)

    with caplog.at_level(logging.WARNING):
        model = TextClassifier(model.pipeline, model.metadata)

    assert model.inference == "pipeline"
    assert "disagrees" in caplog.text


def test_pipeline_inference_is_a_setting_and_a_wrong_value_is_refused():
    app = create_app({"TESTING": True, "INFERENCE": "pipeline"})
    with app.app_context():
        models = app.extensions["models"]
        assert models.wait(timeout=60), models.error
        assert models.holder().model.inference == "pipeline"
        assert app.test_client().post("/predict", json={"input": "my cat"}).status_code == 200

    with pytest.raises(ValueError, match="PREDICTOR_INFERENCE must be one of compiled, pipeline"):
        create_app({"TESTING": True, "INFERENCE": "fast"})
