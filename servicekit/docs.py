"""Swagger UI at /docs and ReDoc at /redoc, served by the service itself, offline.

The pages load only files the service ships, under a Content-Security-Policy that allows
nothing but the service's own origin, so they work without internet and cannot run
whatever a CDN serves that day.

Where the files come from: PyPI's `offapi`, pinned exactly in both requirements.txt. Its
wheel carries swagger-ui-dist 5.33.1 and redoc 2.5.3 (`bundles/redoc.standalone.js`)
unchanged: their sha256 below are those of the files in the npm registry's tarballs of
those versions. Why a PyPI package and not the npm files fetched at build time: the
images and `make run` already install exactly what requirements.txt pins, with nothing
more to download or check at build time, and a version's files on PyPI can never be
replaced. Why offapi: no dependencies, one package for both UIs. swagger-ui-bundle carries
Swagger UI 4.15.5 (2022) and no ReDoc; drf-spectacular-sidecar needs Django; offapi 0.1.4
moves to ReDoc 3, an ES module with telemetry. The digests are checked when the app
starts, so a different file (another offapi) is refused before it is ever served.

flask-smorest's own pages are off (OPENAPI_SWAGGER_UI_PATH and OPENAPI_REDOC_PATH are
None in servicekit.config): its Swagger UI page starts with an inline script, which a
CSP without 'unsafe-inline' blocks. These pages have none: the spec's URL is in a data-
attribute, and the script that reads it is a file like the others.
"""

import hashlib
import importlib.util
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    current_app,
    render_template_string,
    send_from_directory,
    url_for,
)

blp = Blueprint("docs", __name__)

# Each asset's public name: its file in the offapi package, and that file's sha256.
PACKAGE = "offapi"
ASSETS = {
    "swagger-ui.css": (
        "swagger_style.css", "1ac324f7dcd27e4b9386b4bd6421271ec147e922a22c05ba24b11515e9aa6321"),
    "swagger-ui-bundle.js": (
        "swagger_bundle.js", "050bc415ee7048dcd881682678f720264e7da5e373f7461d7c58c755305255f7"),
    "redoc.standalone.js": (
        "redoc.js", "1320f442151c57c447d3b70c7ffc6c4f86d08464020fe34c8cc5d3164e9944f0"),
}

# Every page and asset of the docs is sent with this policy. Beyond the own origin:
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    # Swagger UI (React) and ReDoc (styled-components) write style attributes and <style>
    # elements at run time. Styles cannot run code; scripts stay 'self' only.
    "style-src 'self' 'unsafe-inline'",
    # Swagger UI's stylesheet draws its icons as data: SVG images.
    "img-src 'self' data:",
    # ReDoc builds its search index in a web worker made from a Blob of its own code.
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])

# Starts Swagger UI on the document the page names; "Try it out" then calls the service
# through the same origin. No validator: Swagger UI would send the spec to a remote one.
SWAGGER_UI_INIT = """\
var container = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: container.dataset.specUrl,
  domNode: container,
  validatorUrl: null,
  deepLinking: true
});
"""

SWAGGER_UI_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{{ title }}</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{{ url_for('docs.asset', name='swagger-ui.css') }}">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{{ spec_url }}"></div>
  <script src="{{ url_for('docs.asset', name='swagger-ui-bundle.js') }}"></script>
  <script src="{{ url_for('docs.asset', name='swagger-ui-init.js') }}"></script>
</body>
</html>
"""

REDOC_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{{ title }}</title>
  <link rel="icon" href="data:,">
</head>
<body>
  <redoc spec-url="{{ spec_url }}"></redoc>
  <script src="{{ url_for('docs.asset', name='redoc.standalone.js') }}"></script>
</body>
</html>
"""


def asset_folder():
    """The folder of the pinned files, found without importing the package (offapi's
    __init__ reads every file into memory, Scalar's too)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"The API docs need the {PACKAGE} package: install requirements.txt.")
    return Path(spec.submodule_search_locations[0])


def check_assets(folder):
    """Refuse to serve any file whose sha256 is not the one pinned above."""
    for name, (filename, sha256) in ASSETS.items():
        found = hashlib.sha256((folder / filename).read_bytes()).hexdigest()
        if found != sha256:
            raise RuntimeError(
                f"{folder / filename} (served as {name}) has sha256 {found}, not the pinned "
                f"{sha256}: install the {PACKAGE} version that requirements.txt pins.")


def init_app(app):
    """Serve the docs pages and their assets from this app."""
    app.extensions["docs_assets"] = asset_folder()
    check_assets(app.extensions["docs_assets"])
    app.register_blueprint(blp)


def spec_url():
    # url_for: under the gateway's prefix (/logger/, /predictor/) thanks to ProxyFix.
    return url_for("api-docs.openapi_json")


@blp.get("/docs")
def swagger_ui():
    """Swagger UI on this service's OpenAPI document."""
    return render_template_string(SWAGGER_UI_PAGE, title=current_app.config["API_TITLE"],
                                  spec_url=spec_url())


@blp.get("/redoc")
def redoc():
    """ReDoc on this service's OpenAPI document."""
    return render_template_string(REDOC_PAGE, title=current_app.config["API_TITLE"],
                                  spec_url=spec_url())


@blp.get("/docs/assets/<name>")
def asset(name):
    """One of the pinned files, or the script that starts Swagger UI."""
    if name == "swagger-ui-init.js":
        return current_app.response_class(SWAGGER_UI_INIT, mimetype="text/javascript")
    if name not in ASSETS:
        abort(404)
    return send_from_directory(current_app.extensions["docs_assets"], ASSETS[name][0])


@blp.after_request
def add_security_headers(response):
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
