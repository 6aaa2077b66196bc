from tests.support import assert_error


def test_health_answers_while_the_model_is_not_loaded(unloaded_app):
    response = unloaded_app.test_client().get("/health")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ready_is_503_before_the_model_loads_and_200_after(unloaded_app, holder_of):
    client = unloaded_app.test_client()
    assert_error(client.get("/ready"), 503, "still loading")

    holder_of(unloaded_app).load()

    response = client.get("/ready")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "model": {"name": "pet-text-classifier", "version": "1.0.0"},
    }


def test_ready_reports_why_a_model_failed_to_load(tmp_path, holder_of):
    from predictor_service import create_app

    app = create_app({"MODEL_PATH": str(tmp_path / "missing.skops")})
    assert holder_of(app).wait(timeout=30) is False

    client = app.test_client()
    body = assert_error(client.get("/ready"), 503, "missing.skops: FileNotFoundError")
    assert str(tmp_path) not in body["message"]  # no path of the server reaches a client
    assert client.get("/health").status_code == 200


def test_model_describes_the_loaded_artifact(client):
    body = client.get("/model").get_json()

    assert body["name"] == "pet-text-classifier"
    assert body["version"] == "1.0.0"
    assert body["artifact"] == "1.0.0/model.skops"
    assert body["classes"] == ["bird", "cat", "dog", "fish", "rabbit"]
    assert body["metrics"]["test_accuracy"] >= 0.8
    assert len(body["data"]["sha256"]) == 64
    assert body["training"]["trained_at"]


def test_index_names_the_service_and_its_routes(client):
    body = client.get("/").get_json()

    assert body["service"] == "predictor"
    assert body["version"] == "1.0.0"
    assert {"/predict", "/model", "/health", "/ready", "/openapi.json", "/docs"} <= set(
        body["routes"]
    )
