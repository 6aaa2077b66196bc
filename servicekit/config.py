"""Settings both services share: their OpenAPI pages and the largest body they read."""


class ApiConfig:
    """The base of each service's Config, which adds API_TITLE and API_VERSION."""

    # A longer body is refused with 413; servicekit.hooks names this size in its message.
    MAX_CONTENT_LENGTH = 1024 * 1024

    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "docs"
    OPENAPI_SWAGGER_UI_URL = "https://cdn.jsdelivr.net/npm/swagger-ui-dist/"
    OPENAPI_REDOC_PATH = "redoc"
    OPENAPI_REDOC_URL = "https://cdn.jsdelivr.net/npm/redoc/bundles/redoc.standalone.js"
