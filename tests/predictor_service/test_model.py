"""The model itself: its training command, its artifact, and its accuracy."""

import csv
import json
import os

import numpy.testing
import pytest
import skops.io
from sklearn.metrics import accuracy_score

from predictor_service import train
from predictor_service.config import DEFAULT_REPOSITORY, Config
from predictor_service.model import TRUSTED_TYPES, TextClassifier
from predictor_service.repository import Repository

# Why this threshold: Config.MIN_ACCURACY, which promotion also applies (repository.py).
ACCURACY_THRESHOLD = Config.MIN_ACCURACY
SHIPPED = {version: Repository(DEFAULT_REPOSITORY).artifact(version) for version in train.RECIPES}
DEFAULT_ARTIFACT = SHIPPED[train.FIRST_PRODUCTION]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Run the training command for 1.0.0 into a temporary folder; return the artifact path."""
    artifact = tmp_path_factory.mktemp("model") / "candidate.skops"
    assert train.main(["--version", "1.0.0", "--out", str(artifact)]) == 0
    return artifact


def test_dataset_has_at_least_60_distinct_examples_per_class():
    texts, labels = train.load_dataset()

    assert {label: labels.count(label) for label in set(labels)} == {
        label: 75 for label in ("cat", "dog", "bird", "fish", "rabbit")
    }
    assert len({text.lower() for text in texts}) == len(texts)


def test_training_writes_the_artifact_and_its_metadata(trained):
    metadata = json.loads(trained.with_suffix(".json").read_text())

    assert metadata["name"] == "pet-text-classifier"
    assert metadata["version"] == "1.0.0"
    assert metadata["classes"] == ["bird", "cat", "dog", "fish", "rabbit"]
    assert metadata["metrics"]["test_accuracy"] >= ACCURACY_THRESHOLD
    assert set(metadata["metrics"]["per_class_f1"]) == set(metadata["classes"])
    assert metadata["data"]["sha256"] == train.file_sha256(train.DEFAULT_DATA)
    assert metadata["data"]["test_rows"] == 75
    assert metadata["training"]["seed"] == train.SEED
    assert metadata["training"]["trained_at"].endswith("+00:00")


def test_training_is_reproducible(trained):
    texts, _ = train.load_dataset()
    shipped = TextClassifier.load(DEFAULT_ARTIFACT).pipeline.predict_proba(texts)
    retrained = TextClassifier.load(trained).pipeline.predict_proba(texts)

    numpy.testing.assert_allclose(shipped, retrained, rtol=1e-9)


@pytest.mark.parametrize("version", train.RECIPES)
def test_each_shipped_version_meets_the_accuracy_threshold_on_the_held_out_split(version):
    texts, labels = train.load_dataset()
    _, test_texts, _, test_labels = train.split(texts, labels)
    model = TextClassifier.load(SHIPPED[version])

    predicted = [p.label for p in model.predict(test_texts)]

    assert len(test_texts) == 75
    assert accuracy_score(test_labels, predicted) >= ACCURACY_THRESHOLD


def test_predictions_without_scikit_learns_input_checks_are_the_pipelines_own():
    texts, _ = train.load_dataset()
    model = TextClassifier.load(DEFAULT_ARTIFACT)

    predictions = model.predict(texts)
    probabilities = model.pipeline.predict_proba(texts)  # checks on

    assert [p.label for p in predictions] == [model.classes[row.argmax()] for row in probabilities]
    numpy.testing.assert_allclose([p.confidence for p in predictions], probabilities.max(axis=1),
                                  atol=5e-5)


def test_if_stale_skips_a_current_artifact_and_retrains_a_stale_one(trained, tmp_path, capsys):
    assert train.main(["--version", "1.0.0", "--out", str(trained), "--if-stale"]) == 0
    assert "model is current" in capsys.readouterr().out

    data = tmp_path / "more.csv"
    data.write_text(train.DEFAULT_DATA.read_text() + "a hamster-free cat sentence,cat\n")
    assert not train.is_current(trained, data)


def test_artifact_holding_a_function_is_refused_before_it_is_built(tmp_path):
    artifact = tmp_path / "tampered.skops"
    skops.io.dump({"payload": os.system}, artifact)

    with pytest.raises(skops.io.exceptions.UntrustedTypesFoundException, match="system"):
        TextClassifier.load(artifact)


def test_trusted_types_are_exactly_what_the_artifact_needs_beyond_skops_defaults(trained):
    # Every type skops does not trust by default, as its audit reports it: each must be
    # listed to load, and nothing else should be, since each entry widens what loads.
    assert skops.io.get_untrusted_types(file=trained) == sorted(TRUSTED_TYPES)
    for artifact in SHIPPED.values():
        assert skops.io.get_untrusted_types(file=artifact) == sorted(TRUSTED_TYPES)
    TextClassifier.load(trained)


def test_dataset_is_well_formed_csv():
    with open(train.DEFAULT_DATA, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))

    assert rows and all(set(row) == {"text", "label"} for row in rows)
    assert all(3 <= len(row["text"].split()) <= 25 for row in rows)
