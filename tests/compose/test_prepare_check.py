"""Whether the compose tests must run prepare, decided without Docker: on stand-in
docker and docker-compose commands on an otherwise empty PATH."""

import pytest

from tests.compose.conftest import missing_for_compose


def stand_in(bin_dir, command, script="exit 0"):
    path = bin_dir / command
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    """A PATH holding only the stand-ins a test makes."""
    monkeypatch.setenv("PATH", str(tmp_path))
    return tmp_path


def test_a_fresh_machine_lacks_everything_and_nothing_raises(bin_dir):
    assert missing_for_compose() == [
        "docker", "docker-compose", "a Docker engine",
    ]


def test_an_engine_that_does_not_answer_needs_prepare(bin_dir):
    stand_in(bin_dir, "docker", 'test "$1" != info')
    stand_in(bin_dir, "docker-compose")

    assert missing_for_compose() == ["a Docker engine"]


def test_an_answering_engine_without_docker_compose_needs_prepare(bin_dir):
    stand_in(bin_dir, "docker")

    assert missing_for_compose() == ["docker-compose"]


def test_nothing_is_missing_when_all_answer(bin_dir):
    stand_in(bin_dir, "docker")
    stand_in(bin_dir, "docker-compose")

    assert missing_for_compose() == []
