"""The comparison of model versions: what each answered lately, and how it drifts.

GET /experiments/current reads the latest predictions the logger recorded (production's
and the canary's, from /process forwards) and the shadow answers beside them, and gives
per version: requests, class distribution, mean confidence, latency p50 and p99, the
share of shadow answers that agree with production's on the same request, and the
population stability index (PSI) of its recent class distribution against the class
distribution it was trained on (from the predictors' /models/{version}):

    PSI = sum over classes of (recent - trained) * ln(recent / trained)

with each share floored at 0.0001 so that a class never seen gives a large finite
term. Under 0.1 is commonly read as no shift, 0.1 to 0.25 as a moderate one, and over
0.25 as a large one; the report flags a version past LOGGER_DRIFT_PSI_THRESHOLD (0.2).
"""

import json
import logging
import math
import time
from collections import Counter

import urllib3
from flask import current_app

log = logging.getLogger(__name__)

FLOOR = 0.0001


def get_training_distributions():
    """Return the current app's TrainingDistributions, which create_app made."""
    return current_app.extensions["training_distributions"]


class TrainingDistributions:
    """Each version's training class distribution, asked of the predictors once and kept."""

    def __init__(self, models_url, timeout=2.0):
        self.models_url = models_url.rstrip("/")
        self.pool = urllib3.PoolManager(num_pools=1, maxsize=2, retries=False,
                                        timeout=urllib3.Timeout(total=timeout))
        self._known = {}

    def of(self, version):
        """The version's {class: share} of its training split, or None if unknown."""
        if version not in self._known:
            try:
                response = self.pool.request("GET", f"{self.models_url}/{version}")
                if response.status != 200:
                    return None
                metadata = json.loads(response.data)
            except (urllib3.exceptions.HTTPError, ValueError) as exc:
                log.warning("no training distribution for %s: %s", version, exc)
                return None
            self._known[version] = metadata.get("data", {}).get("train_class_distribution")
        return self._known[version]


def psi(recent, trained):
    """The population stability index of recent shares against trained ones."""
    classes = set(recent) | set(trained)
    total = 0.0
    for label in classes:
        actual, expected = max(recent.get(label, 0.0), FLOOR), max(trained.get(label, 0.0), FLOOR)
        total += (actual - expected) * math.log(actual / expected)
    return round(total, 4)


def percentile(values, fraction):
    """The nearest-rank percentile of values (None for none)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def summary(answers):
    """Requests, class shares, mean confidence and latency of (label, confidence, ms)."""
    counts = Counter(label for label, _, _ in answers)
    latencies = [latency for _, _, latency in answers]
    return {
        "requests": len(answers),
        "classes": {label: round(count / len(answers), 4) for label, count in
                    sorted(counts.items())},
        "mean_confidence": round(sum(conf for _, conf, _ in answers) / len(answers), 4),
        "latency_ms": {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99)},
    }


def report(store, distributions, limit, threshold):
    """The comparison over the latest `limit` predictions and their shadows."""
    served, shadows = store.latest_predictions(limit)
    by_request = {}
    versions = {}
    for request_id, prediction, latency_ms in served:
        version = prediction["model"]["version"]
        answer = (prediction["prediction"]["class"], prediction["prediction"]["confidence"],
                  latency_ms)
        versions.setdefault(version, {"served": [], "shadow": [], "pairs": []})
        versions[version]["served"].append(answer)
        by_request[request_id] = answer[0]
    failed = Counter()
    for request_id, outcome, prediction, latency_ms in shadows:
        if outcome != "predicted":
            failed[outcome] += 1
            continue
        version = prediction["model"]["version"]
        label = prediction["prediction"]["class"]
        entry = versions.setdefault(version, {"served": [], "shadow": [], "pairs": []})
        entry["shadow"].append((label, prediction["prediction"]["confidence"], latency_ms))
        if request_id in by_request:
            entry["pairs"].append(label == by_request[request_id])
    result = {}
    for version, entry in sorted(versions.items()):
        described = {}
        if entry["served"]:
            described["served"] = summary(entry["served"])
        if entry["shadow"]:
            described["shadow"] = summary(entry["shadow"])
            pairs = entry["pairs"]
            described["shadow"]["compared"] = len(pairs)
            described["shadow"]["agreement"] = round(sum(pairs) / len(pairs), 4) if pairs else None
        recent = (described.get("served") or described["shadow"])["classes"]
        trained = distributions.of(version)
        if trained is None:
            described["drift"] = {"psi": None, "drifted": None,
                                  "reason": "training distribution unknown"}
        else:
            index = psi(recent, trained)
            described["drift"] = {"psi": index, "drifted": index > threshold}
        result[version] = described
    return {
        "window": {"predictions": len(served), "shadows": len(shadows), "limit": limit},
        "drift_threshold": threshold,
        "shadow_failures": dict(sorted(failed.items())),
        "versions": result,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
