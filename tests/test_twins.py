"""Each service folder builds alone, so the HTTP plumbing is written twice: keep the twins equal."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def without_docstring(path):
    text = path.read_text()
    return text[text.index('"""', 3) + 3:]


def test_api_modules_of_both_services_are_identical_below_their_docstrings():
    logger = without_docstring(ROOT / "logger_service" / "api.py")
    predictor = without_docstring(ROOT / "predictor_service" / "api.py")

    assert logger == predictor


def between(path, start, end):
    text = path.read_text()
    return text[text.index(start):text.index(end)]


def test_gunicorn_settings_share_their_error_page_response_writer_and_log_setup():
    # From gunicorn's JSON error page to the access line, where the services differ.
    logger, predictor = (
        between(ROOT / service / "gunicorn.conf.py", "def write_json_error", "    def access(")
        for service in ("logger_service", "predictor_service")
    )

    assert logger == predictor
