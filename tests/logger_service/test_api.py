"""The API around the routes: factory, OpenAPI, documentation pages, and JSON errors."""

import os

from logger_service import create_app
from logger_service.client import get_predictor_client
from tests.support import assert_error


def test_config_comes_from_the_factory_argument(tmp_path):
    db_path = str(tmp_path / "x.sqlite3")

    app = create_app({"TESTING": True, "DB_PATH": db_path, "PREDICTOR_URL": "http://h/p"})

    assert app.testing
    with app.app_context():
        assert get_predictor_client().url == "http://h/p"
    assert os.path.exists(db_path)


def test_openapi_documents_the_routes_and_schemas(client):
    spec = client.get("/openapi.json").get_json()

    assert spec["info"]["title"] == "Logger service"
    assert {"/process", "/logs", "/health", "/ready", "/"} <= set(spec["paths"])
    request_schema = spec["components"]["schemas"]["ProcessRequest"]
    assert request_schema["required"] == ["data"]
    assert set(request_schema["properties"]) == {"data", "forward_to_model"}


def test_swagger_ui_and_redoc_are_served(client):
    for path in ("/docs", "/redoc"):
        response = client.get(path)
        assert response.status_code == 200
        assert "openapi.json" in response.get_data(as_text=True)


def test_index_names_the_service_and_its_routes(client):
    body = client.get("/").get_json()

    assert body["service"] == "logger"
    assert {"/process", "/logs", "/health", "/ready", "/docs"} <= set(body["routes"])


def test_unknown_path_is_404_json(client):
    assert_error(client.get("/predict"), 404)


def test_wrong_method_is_405_json(client):
    assert_error(client.get("/process"), 405)
    assert_error(client.delete("/logs"), 405)


def test_unexpected_error_is_500_json_without_traceback(tmp_path):
    app = create_app({"DB_PATH": str(tmp_path / "x.sqlite3")})

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")

    assert_error(response, 500)
    assert "secret internals" not in response.get_data(as_text=True)


def test_405_says_which_methods_the_route_allows(client):
    logs = client.post("/logs", json={})
    process = client.get("/process")

    assert_error(logs, 405)
    assert set(logs.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert_error(process, 405)
    assert set(process.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
