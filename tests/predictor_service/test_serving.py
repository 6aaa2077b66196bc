"""Several versions in one predictor, following the repository's aliases as they move."""

import gc
import shutil
import threading

import pytest

from predictor_service import create_app
from predictor_service.config import Config
from predictor_service.serving import get_models
from tests.support import assert_error, wait_until

MIN_ACCURACY = Config.MIN_ACCURACY
TEXT = {"input": "my cat purrs on the sofa"}


@pytest.fixture
def repository(repository):
    """The shipped versions, 1.0.0 production and 1.1.0 the candidate."""
    repository.stage("1.1.0", MIN_ACCURACY)
    return repository


def app_serving(repository):
    app = create_app({"TESTING": True, "MODEL_REPOSITORY": str(repository.root),
                      "REPOSITORY_POLL_SECONDS": 0.05})
    with app.app_context():
        models = get_models()
    assert models.wait(timeout=60), models.error
    return app, models


def version_of(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["model"]["version"]


def test_production_answers_unless_a_version_or_alias_is_asked_for(repository):
    client = app_serving(repository)[0].test_client()

    assert version_of(client.post("/predict", json=TEXT)) == "1.0.0"
    for asked, answering in [("1.0.0", "1.0.0"), ("1.1.0", "1.1.0"), ("production", "1.0.0"),
                             ("candidate", "1.1.0")]:
        response = client.post("/predict", json=TEXT, headers={"X-Model-Version": asked})
        assert version_of(response) == answering
    batch = client.post("/predict", json={"inputs": ["a dog", "a fish"]},
                        headers={"X-Model-Version": "1.1.0"})
    assert version_of(batch) == "1.1.0"


def test_an_unknown_version_is_404_json_naming_the_versions_served(repository):
    client = app_serving(repository)[0].test_client()

    response = client.post("/predict", json=TEXT, headers={"X-Model-Version": "9.9.9"})

    assert_error(response, 404, "'9.9.9': the versions here are 1.0.0, 1.1.0")
    assert_error(client.get("/models/9.9.9"), 404, "Unknown model version")
    repository.stage(None, MIN_ACCURACY)
    app, _ = app_serving(repository)
    assert_error(app.test_client().post("/predict", json=TEXT,
                                        headers={"X-Model-Version": "candidate"}), 404)


def test_models_lists_each_version_with_its_aliases_and_metrics(repository):
    client = app_serving(repository)[0].test_client()

    listed = client.get("/models").get_json()
    one = client.get("/models/1.1.0").get_json()

    assert [(v["version"], v["aliases"], v["ready"]) for v in listed] == [
        ("1.0.0", ["production"], True), ("1.1.0", ["candidate"], True)]
    assert all(v["metrics"]["test_accuracy"] >= MIN_ACCURACY for v in listed)
    assert one["version"] == "1.1.0" and one["artifact"] == "1.1.0/model.skops"
    assert client.get("/model").get_json()["version"] == "1.0.0"


def test_a_running_worker_follows_promotion_and_rollback_without_a_failed_request(repository):
    repository.stage(None, MIN_ACCURACY)  # 1.1.0 not loaded yet
    app, models = app_serving(repository)
    client = app.test_client()
    seen, failures, stop = [], [], threading.Event()

    def send():
        while not stop.is_set():
            response = client.post("/predict", json=TEXT)
            (seen if response.status_code == 200 else failures).append(response)
            if response.status_code == 200:
                seen[-1] = version_of(response)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        wait_until(lambda: len(seen) > 5)
        repository.promote("1.1.0", MIN_ACCURACY)
        wait_until(lambda: seen[-1] == "1.1.0", timeout=30)
        repository.rollback()
        wait_until(lambda: seen[-1] == "1.0.0", timeout=30)
        count = len(seen)
        wait_until(lambda: len(seen) > count + 5)
    finally:
        stop.set()
        sender.join()

    assert failures == []
    # Production changed once each way: 1.0.0, then 1.1.0, then 1.0.0 again.
    changes = [version for i, version in enumerate(seen) if i == 0 or seen[i - 1] != version]
    assert changes == ["1.0.0", "1.1.0", "1.0.0"]


def test_a_new_production_that_fails_to_load_leaves_the_old_one_serving(repository):
    app, models = app_serving(repository)
    client = app.test_client()
    broken = repository.get("1.1.0")
    shutil.copytree(broken.folder, repository.folder / "2.0.0")
    (repository.folder / "2.0.0" / "model.skops").write_bytes(b"not a skops file")
    aliases = repository.aliases_path.read_text().replace('"candidate": "1.1.0"',
                                                           '"candidate": "2.0.0"')
    repository.aliases_path.write_text(aliases.replace('"production": "1.0.0"',
                                                       '"production": "2.0.0"'))

    wait_until(lambda: "2.0.0" in [v["version"] for v in client.get("/models").get_json()])

    listed = {v["version"]: v for v in client.get("/models").get_json()}
    assert listed["2.0.0"]["ready"] is False
    assert "could not load model.skops" in listed["2.0.0"]["error"]
    assert version_of(client.post("/predict", json=TEXT)) == "1.0.0"
    assert client.get("/ready").status_code == 200
    assert_error(client.post("/predict", json=TEXT, headers={"X-Model-Version": "2.0.0"}),
                 503, "could not load model.skops")


def test_a_repository_without_a_production_version_is_not_ready(tmp_path):
    app = create_app({"TESTING": True, "MODEL_REPOSITORY": str(tmp_path), "LOAD_WAIT_SECONDS": 0})
    with app.app_context():
        assert get_models().wait(timeout=30) is False

    assert_error(app.test_client().get("/ready"), 503, "names no production version")
    assert str(tmp_path) not in app.test_client().get("/ready").get_data(as_text=True)


def test_each_load_puts_the_loaded_versions_out_of_the_collectors_reach(repository):
    repository.stage(None, MIN_ACCURACY)
    frozen_before = gc.get_freeze_count()
    app, models = app_serving(repository)
    model = models.holder("1.0.0").model
    frozen_after_start = gc.get_freeze_count()
    repository.stage("1.1.0", MIN_ACCURACY)
    wait_until(lambda: "1.1.0" in [v["version"] for v in models.describe() if v["ready"]],
               timeout=60)
    candidate = models.holder("1.1.0").model

    # Frozen objects are those gc.get_objects() no longer lists: a full collection skips them.
    tracked = {id(thing) for thing in gc.get_objects()}
    assert frozen_before < frozen_after_start < gc.get_freeze_count()
    assert id(model) not in tracked and id(candidate) not in tracked
