"""servicekit.docs on an app of its own: the pinned assets, the pages, and their CSP.

The pages rendered in a real browser, through the gateway and offline, are in
tests/integration/test_api_docs.py.
"""

import re

import pytest
from flask import Flask

from servicekit import docs
from servicekit.api import init_app
from servicekit.config import ApiConfig
from tests.support import assert_error


@pytest.fixture
def app():
    app = Flask(__name__)
    app.config.from_object(ApiConfig)
    app.config.update(TESTING=True, API_TITLE="Test service", API_VERSION="0.1.0")
    init_app(app, [])
    return app


def script_and_style_sources(html):
    return re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]*)"', html)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_each_page_names_the_spec_and_loads_only_its_own_assets(client, path):
    response = client.get(path)
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert '"/openapi.json"' in html
    sources = [source for source in script_and_style_sources(html) if source != "data:,"]
    assert sources and all(source.startswith("/docs/assets/") for source in sources)
    # No inline script for the CSP to allow: every <script> has a src.
    assert "<script>" not in html
    for source in sources:
        with client.get(source) as asset:  # a file: closed, or a ResourceWarning
            assert asset.status_code == 200


def test_behind_the_gateway_the_page_links_under_the_prefix(client):
    html = client.get("/docs", headers={"X-Forwarded-Prefix": "/logger"}).get_data(as_text=True)

    assert 'data-spec-url="/logger/openapi.json"' in html
    assert 'src="/logger/docs/assets/swagger-ui-bundle.js"' in html


@pytest.mark.parametrize("name, mimetype", [
    ("swagger-ui.css", "text/css"),
    ("swagger-ui-bundle.js", "text/javascript"),
    ("swagger-ui-init.js", "text/javascript"),
    ("redoc.standalone.js", "text/javascript"),
])
def test_assets_are_served_with_their_type_and_the_csp(client, name, mimetype):
    with client.get(f"/docs/assets/{name}") as response:
        assert response.status_code == 200
        # Python's mimetypes names JavaScript application/javascript before 3.12.
        assert response.mimetype in {mimetype, "application/javascript"}
        assert response.headers["Content-Security-Policy"] == docs.CONTENT_SECURITY_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_pages_allow_only_their_own_origin(client, path):
    policy = client.get(path).headers["Content-Security-Policy"]
    directives = dict(directive.split(" ", 1) for directive in policy.split("; "))

    assert directives["default-src"] == "'self'"
    assert "script-src" not in directives  # so scripts fall back to 'self' alone
    assert not re.search(r"https?:|\*|'unsafe-eval'", policy)
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"


def test_an_unknown_asset_is_a_404_in_the_error_shape(client):
    assert_error(client.get("/docs/assets/scalar.js"), 404)
    assert_error(client.get("/docs/assets/..%2F__init__.py"), 404)


def test_a_file_that_is_not_the_pinned_one_stops_the_app_from_starting(tmp_path):
    for name, (filename, _) in docs.ASSETS.items():
        (tmp_path / filename).write_text(f"// not the pinned {name}")

    with pytest.raises(RuntimeError, match="sha256 .* not the pinned"):
        docs.check_assets(tmp_path)


def test_the_pinned_files_are_the_installed_ones():
    docs.check_assets(docs.asset_folder())
