"""Train the pet text classifier and write a versioned artifact with its metadata.

    python -m predictor_service.train [--data CSV] [--out ARTIFACT] [--if-stale]
"""

import argparse
import csv
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import sklearn
import skops.io
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, classification_report, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline

from .config import DEFAULT_ARTIFACT, MODEL_NAME, MODEL_VERSION
from .model import metadata_path

DEFAULT_DATA = Path(__file__).parent / "data" / "pets.csv"
SEED = 42
TEST_SIZE = 0.2


def load_dataset(path=DEFAULT_DATA):
    """Return the texts and labels of a `text,label` CSV file."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [row["text"] for row in rows], [row["label"] for row in rows]


def split(texts, labels):
    """Split into train and held-out test sets, stratified, with the fixed seed."""
    return train_test_split(
        texts, labels, test_size=TEST_SIZE, stratify=labels, random_state=SEED
    )


def build_pipeline():
    """Word and character n-gram TF-IDF features feeding a logistic regression.

    Character n-grams keep typos and word forms ("puppies", "purring") informative;
    logistic regression gives probabilities that serve as the reported confidence.
    """
    features = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True
                ),
            ),
        ]
    )
    classifier = LogisticRegression(C=10.0, max_iter=2000, random_state=SEED)
    return Pipeline([("features", features), ("classifier", classifier)])


def file_sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def train(data_path=DEFAULT_DATA):
    """Fit on the training split, evaluate on the held-out split; return (pipeline, metadata)."""
    texts, labels = load_dataset(data_path)
    train_texts, test_texts, train_labels, test_labels = split(texts, labels)

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    cv_scores = cross_val_score(build_pipeline(), train_texts, train_labels, cv=folds)

    pipeline = build_pipeline().fit(train_texts, train_labels)
    predicted = pipeline.predict(test_texts)
    report = classification_report(test_labels, predicted, output_dict=True)

    metadata = {
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "classes": [str(label) for label in pipeline.classes_],
        "metrics": {
            "test_accuracy": round(accuracy_score(test_labels, predicted), 4),
            "test_macro_f1": round(f1_score(test_labels, predicted, average="macro"), 4),
            "cv_accuracy_mean": round(float(cv_scores.mean()), 4),
            "cv_accuracy_std": round(float(cv_scores.std()), 4),
            "per_class_f1": {
                label: round(report[label]["f1-score"], 4) for label in pipeline.classes_
            },
        },
        "data": {
            "path": Path(data_path).name,
            "sha256": file_sha256(data_path),
            "rows": len(texts),
            "train_rows": len(train_texts),
            "test_rows": len(test_texts),
        },
        "training": {
            "seed": SEED,
            "test_size": TEST_SIZE,
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "scikit_learn": sklearn.__version__,
        },
    }
    return pipeline, metadata


def is_current(artifact_path, data_path):
    """Tell whether the artifact exists and was trained on this very data file."""
    meta_path = metadata_path(artifact_path)
    if not (Path(artifact_path).exists() and meta_path.exists()):
        return False
    metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    return (
        metadata.get("version") == MODEL_VERSION
        and metadata.get("data", {}).get("sha256") == file_sha256(data_path)
    )


def save(pipeline, metadata, artifact_path):
    """Write the artifact and its metadata, each atomically, metadata last."""
    artifact_path = Path(artifact_path)
    artifact_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = artifact_path.with_name(artifact_path.name + ".tmp")
    skops.io.dump(pipeline, tmp)
    tmp.replace(artifact_path)
    meta_path = metadata_path(artifact_path)
    tmp = meta_path.with_name(meta_path.name + ".tmp")
    tmp.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    tmp.replace(meta_path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled CSV")
    parser.add_argument("--out", type=Path, default=DEFAULT_ARTIFACT, help="artifact path")
    parser.add_argument(
        "--if-stale",
        action="store_true",
        help="do nothing when the artifact was already trained on this data",
    )
    args = parser.parse_args(argv)

    if args.if_stale and is_current(args.out, args.data):
        print(f"model is current: {args.out}")
        return 0
    pipeline, metadata = train(args.data)
    save(pipeline, metadata, args.out)
    metrics = metadata["metrics"]
    print(
        f"trained {MODEL_NAME} {MODEL_VERSION} on {metadata['data']['train_rows']} rows: "
        f"held-out accuracy {metrics['test_accuracy']:.3f}, "
        f"macro F1 {metrics['test_macro_f1']:.3f}, "
        f"5-fold CV accuracy {metrics['cv_accuracy_mean']:.3f} "
        f"± {metrics['cv_accuracy_std']:.3f}"
    )
    print(f"wrote {args.out} and {metadata_path(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
