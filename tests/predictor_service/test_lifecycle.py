"""The model repository and its lifecycle command: versions, checks, aliases."""

import json
import os
import shutil

import pytest
import skops.io

from predictor_service import lifecycle, train
from predictor_service.config import DEFAULT_REPOSITORY
from predictor_service.repository import LifecycleError, Repository, UnknownVersion


def run(repository, *args, capsys):
    code = lifecycle.main(["--repository", str(repository.root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_shipped_versions_differ_in_their_recipe_and_record_it():
    shipped = Repository(DEFAULT_REPOSITORY)
    first, second = (shipped.get(version).metadata for version in ("1.0.0", "1.1.0"))

    assert [v.version for v in shipped.versions()] == ["1.0.0", "1.1.0"]
    assert first["training"]["parameters"] == {"char_ngrams": [2, 5], "regularisation": 10.0}
    assert second["training"]["parameters"] == {"char_ngrams": [3, 5], "regularisation": 30.0}
    assert first["data"]["sha256"] == second["data"]["sha256"]  # same data, other model
    assert second["metrics"]["cv_accuracy_mean"] > first["metrics"]["cv_accuracy_mean"]
    assert second["metrics"]["test_mean_confidence"] > first["metrics"]["test_mean_confidence"]


def test_list_shows_every_version_with_its_alias_and_metrics(repository, capsys):
    code, out, _ = run(repository, "list", capsys=capsys)

    assert code == 0
    header, first, second = out.splitlines()
    assert first.split()[:3] == ["1.0.0", "production", "0.867"]
    assert second.split()[:2] == ["1.1.0", "0.867"]


def test_stage_promote_and_rollback_move_the_aliases(repository, capsys):
    assert run(repository, "stage", "1.1.0", capsys=capsys)[0] == 0
    assert repository.aliases()["candidate"] == "1.1.0"

    assert run(repository, "promote", capsys=capsys)[0] == 0
    aliases = repository.aliases()
    assert (aliases["production"], aliases["candidate"], aliases["previous"]) == (
        "1.1.0", None, ["1.0.0"])

    assert run(repository, "rollback", capsys=capsys)[0] == 0
    aliases = repository.aliases()
    assert (aliases["production"], aliases["candidate"], aliases["previous"]) == (
        "1.0.0", None, [])
    assert [change["action"] for change in aliases["changes"]] == [
        "initialise", "stage", "promote", "rollback"]
    code, _, err = run(repository, "rollback", capsys=capsys)
    assert code == 1 and "nothing to roll back to" in err


def test_a_version_below_the_accuracy_threshold_cannot_serve(repository, tmp_path, capsys):
    texts, labels = train.load_dataset()
    shuffled = tmp_path / "shuffled.csv"  # every label moved to another row's text
    shuffled.write_text("text,label\n" + "".join(
        f'"{text}",{label}\n' for text, label in zip(texts, labels[7:] + labels[:7], strict=True)))

    code, out, _ = run(repository, "train", "1.2.0", "--recipe", "1.1.0",
                       "--data", str(shuffled), capsys=capsys)
    assert code == 0 and "cannot serve: held-out accuracy" in out

    for command in (["stage", "1.2.0"], ["promote", "1.2.0"]):
        code, _, err = run(repository, *command, capsys=capsys)
        assert code == 1 and "below the threshold 0.8" in err
    assert repository.aliases()["production"] == "1.0.0"
    assert repository.aliases()["candidate"] is None


def test_a_version_whose_artifact_fails_the_trust_check_cannot_serve(repository, capsys):
    tampered = repository.get("1.1.0").artifact
    skops.io.dump({"payload": os.system}, tampered)

    code, out, _ = run(repository, "check", "1.1.0", capsys=capsys)
    assert code == 1 and "types skops does not trust: posix.system" in out
    code, _, err = run(repository, "promote", "1.1.0", capsys=capsys)
    assert code == 1 and "cannot serve" in err
    assert repository.aliases()["production"] == "1.0.0"


def test_a_version_is_written_once_and_never_overwritten(repository, capsys):
    before = repository.get("1.1.0").artifact.read_bytes()

    code, _, err = run(repository, "train", "1.1.0", capsys=capsys)

    assert code == 1 and "versions never change" in err
    assert repository.get("1.1.0").artifact.read_bytes() == before


def test_a_new_version_appears_whole_or_not_at_all(repository):
    def fails_half_way(folder):
        (folder / "model.skops").write_bytes(b"half an artifact")
        raise OSError("disk full")

    with pytest.raises(OSError):
        repository.add("1.3.0", fails_half_way)

    with pytest.raises(UnknownVersion):
        repository.get("1.3.0")
    assert not [entry for entry in repository.folder.iterdir() if "1.3.0" in entry.name]


@pytest.mark.parametrize("version", ["1.0", "v1.2.0", "../1.2.0", "01.2.0"])
def test_a_version_must_be_major_minor_patch(repository, version):
    with pytest.raises(LifecycleError, match="MAJOR.MINOR.PATCH"):
        repository.add(version, lambda folder: None)


def test_versions_sort_by_number_not_text(repository):
    for version in ("1.9.0", "1.10.0"):
        shutil.copytree(repository.get("1.0.0").folder, repository.folder / version)
    assert [v.version for v in repository.versions()] == [
        "1.0.0", "1.1.0", "1.9.0", "1.10.0"]


def test_the_aliases_file_is_json_that_names_the_versions(repository):
    stored = json.loads(repository.aliases_path.read_text())
    assert stored["production"] == "1.0.0" and stored["candidate"] is None
