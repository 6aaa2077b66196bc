"""Load shedding: a worker past its bound answers 503 with Retry-After at once, and
takes light requests while it has room."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from predictor_service import create_app
from predictor_service.admission import Admission, Overloaded
from predictor_service.serving import get_models
from tests.support import GunicornServer, assert_error


def test_admission_holds_characters_while_the_work_runs_and_refuses_past_its_bound():
    admission = Admission(max_chars=100)

    with admission.admit(["a" * 60]):
        assert admission.in_flight == 60
        with admission.admit(["b" * 20, "c" * 20]):  # 100: exactly the bound
            with pytest.raises(Overloaded) as refused:
                with admission.admit(["d" * 2]):  # past the 1 % that always gets in
                    pass
    assert admission.in_flight == 0
    assert refused.value.status == 503
    assert refused.value.headers == {"Retry-After": "1"}
    assert "at most 100" in str(refused.value)


def test_a_light_request_is_admitted_even_when_heavy_ones_fill_the_bound():
    admission = Admission(max_chars=10_000)

    with admission.admit(["a" * 10_000]):
        with admission.admit(["my cat"]), admission.admit(["b" * 100]):  # 1 %
            assert admission.in_flight == 10_106
        with pytest.raises(Overloaded):
            with admission.admit(["c" * 101]):
                pass


def test_admission_releases_the_characters_of_work_that_failed():
    admission = Admission(max_chars=100)

    with pytest.raises(ValueError), admission.admit(["a" * 100]):
        raise ValueError("the model failed")

    with admission.admit(["b" * 100]):
        assert admission.in_flight == 100


def test_a_request_bigger_than_the_bound_runs_when_nothing_else_does():
    admission = Admission(max_chars=10)

    with admission.admit(["a" * 50]):
        with pytest.raises(Overloaded):
            with admission.admit(["b"]):
                pass


def test_logs_each_shed_request_as_a_warning(caplog):
    admission = Admission(max_chars=10)

    with admission.admit(["a" * 10]), pytest.raises(Overloaded):
        with admission.admit(["b" * 5]):
            pass

    [record] = [r for r in caplog.records if r.name == "predictor_service.admission"]
    assert record.levelname == "WARNING"
    assert "5 characters" in record.getMessage()


@pytest.mark.parametrize("batching", [True, False])
def test_a_full_worker_answers_503_json_with_retry_after_then_recovers(batching):
    app = create_app({"TESTING": True, "BATCHING": batching, "MAX_QUEUED_CHARS": 100})
    with app.app_context():
        models = get_models()
    assert models.wait(timeout=60), models.error
    client = app.test_client()

    with models.holder().admission.admit(["x" * 95]):  # another request's work, in flight
        light = client.post("/predict", json={"input": "a cat"})
        heavy = client.post("/predict", json={"input": "a cat on the mat"})
        health = client.get("/health")

    assert light.status_code == 200
    assert_error(heavy, 503, "overloaded")
    assert heavy.headers["Retry-After"] == "1"
    assert health.status_code == 200
    assert client.post("/predict", json={"input": "a cat on the mat"}).status_code == 200


# --- A real predictor under gunicorn, its bounds made tiny through the environment.

HEAVY_TEXTS = 20  # of 10,000 characters: 200,000 in all, a fifth of a second of CPU
HEAVY = {"inputs": ["my cat purrs on the mat " * 400 + "x" * 400] * HEAVY_TEXTS}
LIGHT = {"input": "a goldfish in a bowl"}
TIMEOUT = 30  # seconds: a request that waits this long has waited unbounded


# Without batching, on gevent a request's model call holds the worker and no other
# request is read meanwhile: requests wait in the kernel and in the gateway, never in the
# worker, so it has nothing to shed. On threads they wait for the model inside it.
@pytest.fixture(scope="module", params=[("on", "gevent"), ("off", "gthread")],
                ids=["batching", "no-batching"])
def busy_replica(request, tmp_path_factory):
    """One worker with room for one heavy request and a few light ones beside it."""
    batching, worker_class = request.param
    env = {
        "PREDICTOR_BATCHING": batching,
        "PREDICTOR_WORKER_CLASS": worker_class,
        "PREDICTOR_THREADS": "8",
        "PREDICTOR_MAX_REQUEST_CHARS": "200000",
        "PREDICTOR_MAX_QUEUED_CHARS": "250000",
    }
    with GunicornServer("predictor", tmp_path_factory.mktemp("busy"), env=env) as server:
        yield server


def test_concurrent_heavy_requests_are_shed_with_503_and_light_ones_still_succeed(busy_replica):
    url = f"{busy_replica.url}/predict"
    heavy_senders = 8
    barrier = threading.Barrier(heavy_senders)
    heavy_done = threading.Event()

    def send_heavy(_):
        with requests.Session() as session:
            answers = []
            for _round in range(3):
                barrier.wait()
                answers.append(session.post(url, json=HEAVY, timeout=TIMEOUT))
            return answers

    def send_light():
        answers = []
        with requests.Session() as session:
            while not heavy_done.is_set() or not answers:
                answers.append(session.post(url, json=LIGHT, timeout=TIMEOUT))
        return answers

    with ThreadPoolExecutor(max_workers=heavy_senders + 1) as pool:
        light = pool.submit(send_light)
        heavy = [answer for answers in pool.map(send_heavy, range(heavy_senders))
                 for answer in answers]
        heavy_done.set()
        light = light.result()

    statuses = [answer.status_code for answer in heavy]
    assert set(statuses) == {200, 503}, statuses  # some computed, some shed
    for answer in heavy:
        if answer.status_code == 503:
            assert answer.headers["Retry-After"] == "1"
            assert answer.headers["Content-Type"] == "application/json"
            body = answer.json()
            assert body["code"] == 503 and "overloaded" in body["message"]
        else:
            assert len(answer.json()["predictions"]) == HEAVY_TEXTS
    assert [answer.status_code for answer in light] == [200] * len(light)
    shed = busy_replica.log_entries(logger="predictor_service.admission")
    assert any(entry["message"].startswith("shed a request of 200000 characters")
               for entry in shed)
    assert {entry["level"] for entry in shed} == {"warning"}


def test_a_request_over_the_configured_characters_is_422_naming_the_limit(busy_replica):
    response = requests.post(f"{busy_replica.url}/predict",
                             json={"inputs": ["x" * 10_000] * 21}, timeout=TIMEOUT)

    assert response.status_code == 422
    [message] = response.json()["errors"]["json"]["inputs"]
    assert "210000 characters, at most 200000" in message
