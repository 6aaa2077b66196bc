"""The API around the routes: OpenAPI, documentation pages, and JSON errors."""

from predictor_service import create_app
from tests.support import assert_error


def test_config_comes_from_the_factory_argument():
    app = create_app({"TESTING": True, "LOAD_MODEL_ON_START": False, "INSTANCE_ID": "x"})

    assert app.testing
    assert app.config["INSTANCE_ID"] == "x"


def test_openapi_documents_the_routes_and_schemas(client):
    spec = client.get("/openapi.json").get_json()

    assert spec["info"]["title"] == "Predictor service"
    assert {"/predict", "/model", "/health", "/ready", "/"} <= set(spec["paths"])
    request_schema = spec["components"]["schemas"]["PredictRequest"]
    assert {"input", "inputs"} <= set(request_schema["properties"])
    assert "422" in spec["paths"]["/predict"]["post"]["responses"]


def test_swagger_ui_and_redoc_are_served(client):
    for path in ("/docs", "/redoc"):
        response = client.get(path)
        assert response.status_code == 200
        assert "openapi.json" in response.get_data(as_text=True)


def test_unknown_path_is_404_json(client):
    assert_error(client.get("/nope"), 404)
    assert_error(client.post("/nope", data="x", content_type="text/plain"), 404)


def test_wrong_method_is_405_json(client):
    assert_error(client.get("/predict"), 405)


def test_unexpected_error_is_500_json_without_traceback():
    app = create_app({"LOAD_MODEL_ON_START": False})

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")

    body = assert_error(response, 500)
    assert "secret internals" not in response.get_data(as_text=True)
    assert body["status"] == "Internal Server Error"


def test_405_says_which_methods_the_route_allows(client):
    predict = client.get("/predict")
    model = client.post("/model", json={})

    assert_error(predict, 405)
    assert set(predict.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    assert_error(model, 405)
    assert set(model.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
