"""The logger's own metrics, in one process: records by outcome, forwards, the breaker."""

import pytest
from prometheus_client import REGISTRY

from tests.logger_service.test_forward_failures import serve


def value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_records_are_counted_by_outcome_and_each_write_is_timed(client):
    logged = value("logger_records_total", outcome="logged")
    unavailable = value("logger_records_total", outcome="predictor_unavailable")
    writes = value("logger_db_write_duration_seconds_count")

    client.post("/process", json={"data": "kept"})
    client.post("/process", json={"data": "forwarded", "forward_to_model": True})

    assert value("logger_records_total", outcome="logged") - logged == 1
    assert value("logger_records_total", outcome="predictor_unavailable") - unavailable == 1
    assert value("logger_db_write_duration_seconds_count") - writes == 2


@pytest.mark.sqlite_only  # a folder where the file should be
def test_a_record_that_cannot_be_committed_is_counted_as_a_failure(make_app, tmp_path):
    taken = tmp_path / "a-folder-not-a-database"
    taken.mkdir()
    client = make_app(DB_PATH=str(taken)).test_client()
    failures = value("logger_record_failures_total")

    response = client.post("/process", json={"data": "not stored"})

    assert response.status_code == 503
    assert value("logger_record_failures_total") - failures == 1


def test_forwards_are_timed_by_outcome(make_app):
    server = serve(200, '{"prediction": {"class": "dog", "confidence": 0.9,'
                        ' "input_length": 3}, "message": "m"}')
    client = make_app(PREDICTOR_URL=f"http://127.0.0.1:{server.server_port}/predict").test_client()
    predicted = value("logger_forward_duration_seconds_count", outcome="predicted")

    try:
        response = client.post("/process", json={"data": "dog", "forward_to_model": True})
    finally:
        server.shutdown()
        server.server_close()

    assert response.status_code == 200
    assert value("logger_forward_duration_seconds_count", outcome="predicted") - predicted == 1


def test_the_breaker_state_and_its_transitions_are_exported(make_app):
    app = make_app(PREDICTOR_BREAKER_FAIL_MAX=2, PREDICTOR_BREAKER_RESET_TIMEOUT=60)
    client = app.test_client()
    opened = value("logger_predictor_circuit_transitions_total",
                   from_state="closed", to_state="open")
    open_workers = value("logger_predictor_circuit_state", state="open")
    closed_workers = value("logger_predictor_circuit_state", state="closed")

    for _ in range(3):  # nothing listens: two failures open the circuit
        client.post("/process", json={"data": "x", "forward_to_model": True})

    assert value("logger_predictor_circuit_transitions_total",
                 from_state="closed", to_state="open") - opened == 1
    assert value("logger_predictor_circuit_state", state="open") - open_workers == 1
    assert value("logger_predictor_circuit_state", state="closed") - closed_workers == -1
