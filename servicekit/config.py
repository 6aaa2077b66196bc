"""Settings both services share: their OpenAPI pages and the largest body they read."""


class ApiConfig:
    """The base of each service's Config, which adds API_TITLE and API_VERSION."""

    # A longer body is refused with 413; servicekit.hooks names this size in its message.
    MAX_CONTENT_LENGTH = 1024 * 1024

    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "openapi.json"
    # No pages from flask-smorest: they load Swagger UI and ReDoc from a URL, and start
    # Swagger UI with an inline script that a strict CSP blocks. servicekit.docs serves
    # /docs and /redoc from pinned copies instead.
    OPENAPI_SWAGGER_UI_PATH = None
    OPENAPI_REDOC_PATH = None
