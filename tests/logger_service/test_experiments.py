"""The comparison of model versions: served and shadow answers, agreement, drift."""

import pytest

from logger_service import experiments
from logger_service.shadow import get_shadow_recorder
from tests.support import free_port

BALANCED = ["my cat purrs on the sofa", "the puppy fetched the ball", "a parrot sings",
            "the goldfish swims in its bowl", "the bunny hops in the garden"]


@pytest.fixture
def comparing_app(make_app, candidate_server):
    """A logger that forwards to production and shadows to the candidate, both served by
    one predictor, and reads training distributions from its /models."""
    return make_app(PREDICTOR_URL=f"{candidate_server.url}/predict", PREDICTOR_READ_TIMEOUT=5.0,
                    SHADOW_URL=f"{candidate_server.url}/predict",
                    MODELS_URL=f"{candidate_server.url}/models")


def send(app, texts, shadowed=True):
    """Each text through /process (production answers) and, if shadowed, its shadow."""
    client = app.test_client()
    with app.app_context():
        recorder = get_shadow_recorder()
    for n, text in enumerate(texts):
        request_id = f"compare-{n}"
        response = client.post("/process", json={"data": text, "forward_to_model": True},
                               headers={"X-Request-ID": request_id})
        assert response.status_code == 200
        if shadowed:
            recorder.shadow(request_id, text)  # what the queue's thread does


def test_each_version_is_described_from_its_answers(comparing_app):
    send(comparing_app, BALANCED * 4)

    report = comparing_app.test_client().get("/experiments/current").get_json()

    production, candidate = report["versions"]["1.0.0"], report["versions"]["1.1.0"]
    assert report["window"] == {"predictions": 20, "shadows": 20, "limit": 1000}
    assert set(production) == {"served", "drift"} and set(candidate) == {"shadow", "drift"}
    assert production["served"]["requests"] == 20
    assert production["served"]["classes"] == {label: 0.2 for label in
                                               ("bird", "cat", "dog", "fish", "rabbit")}
    assert 0.5 < production["served"]["mean_confidence"] < 1
    latency = production["served"]["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"]
    # The two versions agree on these texts, and 1.1.0 is surer (docs/models.md).
    assert candidate["shadow"]["compared"] == 20
    assert candidate["shadow"]["agreement"] == 1.0
    assert candidate["shadow"]["mean_confidence"] > production["served"]["mean_confidence"]
    # Five classes in the training split's own shares: no drift.
    assert production["drift"] == {"psi": 0.0, "drifted": False}


def test_a_class_distribution_far_from_training_is_flagged_as_drift(comparing_app):
    send(comparing_app, ["my cat purrs on the sofa", "the kitten chases a mouse"] * 5,
         shadowed=False)

    report = comparing_app.test_client().get("/experiments/current").get_json()

    drift = report["versions"]["1.0.0"]["drift"]
    assert drift["drifted"] is True and drift["psi"] > report["drift_threshold"] == 0.2


def test_the_window_is_the_latest_predictions(comparing_app):
    send(comparing_app, ["my cat purrs on the sofa"] * 5, shadowed=False)
    send(comparing_app, ["the goldfish swims in its bowl"] * 3, shadowed=False)

    report = comparing_app.test_client().get("/experiments/current?limit=3").get_json()

    assert report["versions"]["1.0.0"]["served"]["classes"] == {"fish": 1.0}


def test_without_a_training_distribution_drift_is_unknown(make_app, candidate_server):
    app = make_app(PREDICTOR_URL=f"{candidate_server.url}/predict", PREDICTOR_READ_TIMEOUT=5.0,
                   MODELS_URL=f"http://127.0.0.1:{free_port()}/models")
    send(app, BALANCED, shadowed=False)

    drift = app.test_client().get("/experiments/current").get_json()["versions"]["1.0.0"]["drift"]

    assert drift == {"psi": None, "drifted": None, "reason": "training distribution unknown"}


def test_shadows_without_an_answer_are_counted_by_why(make_app, candidate_server):
    app = make_app(SHADOW_URL=f"http://127.0.0.1:{free_port()}/predict")
    with app.app_context():
        get_shadow_recorder().shadow("lost", "a cat")

    report = app.test_client().get("/experiments/current").get_json()

    assert report["shadow_failures"] == {"unavailable": 1}
    assert report["versions"] == {}


@pytest.mark.parametrize("limit", ["0", "10001", "ten"])
def test_the_window_is_bounded(app, limit):
    assert app.test_client().get(f"/experiments/current?limit={limit}").status_code == 422


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift():
    even = {"a": 0.5, "b": 0.5}

    assert experiments.psi(even, even) == 0.0
    # (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5) = 0.2351 + 0.6438
    assert experiments.psi({"a": 0.9, "b": 0.1}, even) == pytest.approx(0.8789, abs=1e-4)
    assert experiments.psi({"a": 1.0}, even) > experiments.psi({"a": 0.9, "b": 0.1}, even)
