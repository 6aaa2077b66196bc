"""Nothing acknowledged is ever lost: the logger killed mid-burst, a full disk, a read-only one."""

import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.support import GunicornServer, wait_until

BURST = 3000


def post(url, n):
    """Send one input; return its request id if the logger acknowledged it with 200."""
    request_id = f"crash-{n}"
    try:
        response = requests.post(f"{url}/process", json={"data": f"input {n}"},
                                 headers={"X-Request-ID": request_id}, timeout=10)
    except requests.RequestException:
        return None
    return request_id if response.status_code == 200 else None


def test_sigkill_mid_burst_loses_no_acknowledged_input(tmp_path):
    db_path = tmp_path / "logger.sqlite3"
    env = {"LOGGER_DB_PATH": str(db_path), "LOGGER_WORKERS": "2"}
    server = GunicornServer("logger", tmp_path, env=env).start()
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            futures = [pool.submit(post, server.url, n) for n in range(BURST)]
            deadline = time.monotonic() + 120
            while sum(f.done() and f.result() is not None for f in futures) < 300:
                assert time.monotonic() < deadline, "the burst did not get going"
                time.sleep(0.02)
            server.kill()  # master and workers, mid-burst, no chance to clean up
            acknowledged = {future.result() for future in futures} - {None}
        assert 300 <= len(acknowledged) < BURST, len(acknowledged)  # killed mid-burst

        restarted = GunicornServer("logger", tmp_path, env=env, port=server.port).start()
        try:
            assert post(restarted.url, BURST) == f"crash-{BURST}"  # it serves again
        finally:
            restarted.stop()
    finally:
        server.stop()

    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {row[0] for row in conn.execute("SELECT request_id FROM records")}
    assert acknowledged <= stored


def in_own_mount_namespace(script):
    """A command prefix that runs script, then the command, in a mount namespace of its own.

    Disks can then be mounted for the logger alone, without touching the machine's.
    """
    unshare = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    return [*unshare, "sh", "-c", f'set -e\n{script}\nexec "$@"', "sh"]


def test_full_disk_gives_503_never_a_200_for_an_input_not_stored(tmp_path):
    data_dir = tmp_path / "small-disk"
    data_dir.mkdir()
    # A 256 KiB tmpfs: a real ENOSPC.
    wrapper = in_own_mount_namespace(f'mount -t tmpfs -o size=256k tmpfs "{data_dir}"')
    env = {"LOGGER_DB_PATH": str(data_dir / "logger.sqlite3"), "LOGGER_WORKERS": "1",
           "LOGGER_DB_MIN_FREE_BYTES": str(64 * 1024)}
    with GunicornServer("logger", tmp_path, env=env, wrapper=wrapper) as server:
        statuses = []
        with requests.Session() as http:
            for n in range(200):  # 200 x 8 KiB: well past 256 KiB
                response = http.post(f"{server.url}/process",
                                     json={"data": f"{n:04d}" + "x" * 8192}, timeout=10)
                statuses.append(response.status_code)
                if response.status_code == 503:
                    body = response.json()
                    assert body["message"] == "Could not record the input: storage is unavailable."
                    break
            ready = http.get(f"{server.url}/ready")
            stored = http.get(f"{server.url}/logs?limit=500").json()["records"]
            health = http.get(f"{server.url}/health")

    assert statuses[-1] == 503 and set(statuses[:-1]) == {200}
    assert ready.status_code == 503
    assert "full" in ready.json()["errors"]["database"]
    assert health.status_code == 200  # alive, only not ready
    # Every acknowledged input is stored; the refused one is not.
    assert len(stored) == len(statuses) - 1
    assert sorted(r["data"][:4] for r in stored) == [f"{n:04d}" for n in range(len(statuses) - 1)]


def test_read_only_disk_gives_503_until_it_is_writable_again(tmp_path):
    data_dir = tmp_path / "read-only-disk"
    data_dir.mkdir()
    writable = tmp_path / "make-it-writable"
    # A read-only tmpfs, remounted read-write once the test creates the file `writable`
    # (the watcher gives up after 60 s, so that it never outlives the test).
    wrapper = in_own_mount_namespace(
        f'mount -t tmpfs -o size=64m,ro tmpfs "{data_dir}"\n'
        f'{{ for _ in $(seq 1200); do [ -e "{writable}" ] && break; sleep 0.05; done; '
        f'mount -o remount,rw "{data_dir}"; }} &'
    )
    env = {"LOGGER_DB_PATH": str(data_dir / "logger.sqlite3"), "LOGGER_WORKERS": "1"}
    server = GunicornServer("logger", tmp_path, env=env, wrapper=wrapper, started="/health")
    with server, requests.Session() as http:
        refused = http.post(f"{server.url}/process", json={"data": "not stored"}, timeout=10)
        unready = http.get(f"{server.url}/ready", timeout=10)
        health = http.get(f"{server.url}/health", timeout=10)

        writable.touch()
        wait_until(lambda: http.get(f"{server.url}/ready", timeout=10).status_code == 200,
                   what="the logger ready on the disk made writable")
        accepted = http.post(f"{server.url}/process", json={"data": "stored"}, timeout=10)
        stored = http.get(f"{server.url}/logs", timeout=10).json()["records"]

    assert refused.status_code == 503
    assert refused.json()["message"] == "Could not record the input: storage is unavailable."
    assert unready.status_code == 503
    assert unready.json()["errors"]["database"] == "unable to open database file"
    assert health.status_code == 200  # alive, only not ready
    # Once the disk takes writes, the logger serves again without a restart.
    assert accepted.status_code == 200
    assert [record["data"] for record in stored] == ["stored"]
