"""A predictor replica under gunicorn, configured from its environment as the stack does."""

import json
import shutil

import pytest
import requests

from predictor_service.config import DEFAULT_REPOSITORY
from predictor_service.model import metadata_path
from predictor_service.repository import PRODUCTION, Repository
from tests.support import GunicornServer


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    """A predictor serving a copy of the model, renamed and with a version of its own."""
    workdir = tmp_path_factory.mktemp("replica")
    artifact = workdir / "replica-model.skops"
    shipped = Repository(DEFAULT_REPOSITORY).artifact(PRODUCTION)
    shutil.copyfile(shipped, artifact)
    metadata = json.loads(metadata_path(shipped).read_text())
    metadata_path(artifact).write_text(json.dumps({**metadata, "version": "1.0.0-replica"}))
    env = {"PREDICTOR_MODEL_PATH": str(artifact), "PREDICTOR_INSTANCE_ID": "replica-7"}
    # Its stdout goes to the server's log, its stderr to a file of its own.
    stderr_apart = ("sh", "-c", 'exec "$@" 2>"$0"', str(workdir / "stderr.log"))
    with GunicornServer("predictor", workdir, env=env, wrapper=stderr_apart) as server:
        yield server


def test_model_path_and_instance_id_come_from_the_environment(replica):
    predicted = requests.post(f"{replica.url}/predict", json={"input": "my cat purrs"}, timeout=10)
    described = requests.get(f"{replica.url}/model", timeout=10)
    missing = requests.get(f"{replica.url}/no-such-route", timeout=10)

    assert predicted.json()["model"] == {"name": "pet-text-classifier", "version": "1.0.0-replica"}
    assert described.json()["artifact"] == "replica-model.skops"
    assert missing.status_code == 404
    assert [r.headers["X-Served-By"] for r in (predicted, described, missing)] == ["replica-7"] * 3


def test_gunicorn_and_the_app_log_to_stdout_and_nothing_to_stderr(replica):
    requests.get(f"{replica.url}/health", headers={"X-Request-ID": "to-stdout"}, timeout=10)

    [access] = replica.log_entries(request_id="to-stdout")
    # The access line names the request's id and the replica that answered it.
    assert access["served_by"] == "replica-7"
    assert (access["logger"], access["service"], access["method"], access["path"],
            access["status"]) == ("gunicorn.access", "predictor", "GET", "/health", 200)
    assert access["instance"].endswith(f":{replica.port}")
    assert replica.log_entries(logger="gunicorn.error", message=f"Booting worker with pid: "
                                                                f"{access['pid']}")
    # The app's own line, through gunicorn's error log.
    assert [entry for entry in replica.log_entries(logger="predictor_service.model")
            if replica.env["PREDICTOR_MODEL_PATH"] in entry["message"]]
    assert (replica.log_path.parent / "stderr.log").read_text() == ""

