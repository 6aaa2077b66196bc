"""The FastAPI peer answers what the Flask predictor answers.

    .venv/bin/python -m pytest bench/peers -q -p no:cacheprovider

Run explicitly (not part of the main suite); needs bench/peers/requirements.txt.
"""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from predictor_service import create_app

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    "test input",
    "cat image data",
    "my puppy chews my shoes",
    "goldfish in a bowl",
    "a",
    "  the parrot sings ",
    "Ünïcödé hamster 🐇 carrots",
    "x" * 10_000,
]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    """The peer under uvicorn, 2 workers, as the benchmark runs it; yields its base URL."""
    port = free_port()
    log = (tmp_path_factory.mktemp("peer") / "uvicorn.log").open("w")
    command = [sys.executable, "-m", "uvicorn", "bench.peers.fastapi_predictor:app",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--no-access-log"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, Path(log.name).read_text()
            try:
                if requests.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, Path(log.name).read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def flask_client():
    app = create_app({"TESTING": True})
    assert app.extensions["models"].wait(timeout=60)
    return app.test_client()


def test_health(peer):
    response = requests.get(f"{peer}/health", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("text", TEXTS, ids=lambda text: text[:20])
def test_predict_equals_flask(peer, flask_client, text):
    expected = flask_client.post("/predict", json={"input": text})
    assert expected.status_code == 200
    response = requests.post(f"{peer}/predict", json={"input": text}, timeout=5)
    assert response.status_code == 200
    body = response.json()
    assert body == expected.get_json()
    assert list(body) == ["prediction", "message", "model"]
    assert list(body["prediction"]) == ["class", "confidence", "input_length"]


def test_readme_example(peer):
    body = requests.post(f"{peer}/predict", json={"input": "test input"}, timeout=5).json()
    assert body == {
        "prediction": {"class": "fish", "confidence": 0.4756, "input_length": 10},
        "message": "Predicted class: fish with 47.6% confidence",
        "model": {"name": "pet-text-classifier", "version": "1.0.0"},
    }


@pytest.mark.parametrize("payload", [
    {}, {"input": ""}, {"input": "x" * 10_001}, {"input": 5}, {"input": None},
    {"input": "a", "extra": 1}, {"inputs": ["a"]}, [], "a",
])
def test_invalid_input_is_422(peer, payload):
    response = requests.post(f"{peer}/predict", json=payload, timeout=5)
    assert response.status_code == 422
    assert "detail" in response.json()


def test_malformed_json_is_422(peer):
    response = requests.post(f"{peer}/predict", data="{", timeout=5,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 422
