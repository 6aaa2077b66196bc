"""Nothing acknowledged is ever lost: the logger killed mid-burst (on both stores),
PostgreSQL restarted or stopped under it, a full disk, a read-only one."""

import os
import random
import sqlite3
import string
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from logger_service import create_app
from logger_service.store import get_store
from tests.postgres import PostgresServer
from tests.support import GunicornServer, wait_until

BURST = 3000


def post(url, n):
    """Send one input; return its request id and the status it got (None: no answer)."""
    request_id = f"crash-{n}"
    try:
        response = requests.post(f"{url}/process", json={"data": f"input {n}"},
                                 headers={"X-Request-ID": request_id}, timeout=10)
    except requests.RequestException:
        return request_id, None
    if response.status_code == 503:  # a refusal is JSON that says why
        assert response.json()["message"] == "Could not record the input: storage is unavailable."
    return request_id, response.status_code


def acknowledged_ids(futures):
    """The request ids the burst's answers acknowledged, once every answer is in."""
    return {request_id for request_id, status in (f.result() for f in futures) if status == 200}


def acknowledged_so_far(futures):
    return sum(future.done() and future.result()[1] == 200 for future in futures)


def wait_acknowledged(futures, count, timeout=120):
    """Wait until count inputs of the burst have been acknowledged."""
    deadline = time.monotonic() + timeout
    while acknowledged_so_far(futures) < count:
        assert time.monotonic() < deadline, "the burst did not get going"
        time.sleep(0.02)


def logger_env(database, **settings):
    """The logger's environment for a store's settings (DB_PATH or DATABASE_URL)."""
    return {f"LOGGER_{name}": value for name, value in {**database, **settings}.items()}


def stored_request_ids(database):
    """Every request id in the store, read back page by page as /logs reads them."""
    app = create_app({"TESTING": True, **database})
    stored, before_id = set(), None
    try:
        with app.app_context():
            while page := get_store().page(limit=500, before_id=before_id):
                stored |= {record["request_id"] for record in page}
                before_id = page[-1]["id"]
    finally:
        app.extensions["store"].close()
    return stored


def test_sigkill_mid_burst_loses_no_acknowledged_input(tmp_path, database):
    env = logger_env(database, WORKERS="2")
    server = GunicornServer("logger", tmp_path, env=env).start()
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            futures = [pool.submit(post, server.url, n) for n in range(BURST)]
            wait_acknowledged(futures, 300)
            server.kill()  # master and workers, mid-burst, no chance to clean up
            acknowledged = acknowledged_ids(futures)
        assert 300 <= len(acknowledged) < BURST, len(acknowledged)  # killed mid-burst

        restarted = GunicornServer("logger", tmp_path, env=env, port=server.port).start()
        try:
            assert post(restarted.url, BURST) == (f"crash-{BURST}", 200)  # it serves again
        finally:
            restarted.stop()
    finally:
        server.stop()

    if "DB_PATH" in database:
        with sqlite3.connect(database["DB_PATH"]) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert acknowledged <= stored_request_ids(database)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgresql_restarted_mid_burst_loses_no_acknowledged_input(tmp_path, postgres_server,
                                                                    mode):
    """fast: a clean restart that ends every connection; immediate: as a crash, recovered
    from the write-ahead log. Either way the logger reconnects by itself."""
    database = {"DATABASE_URL": postgres_server.database()}
    env = logger_env(database, WORKERS="2", DB_BUSY_TIMEOUT="2")
    with GunicornServer("logger", tmp_path, env=env) as server:
        with ThreadPoolExecutor(max_workers=16) as pool:
            futures = [pool.submit(post, server.url, n) for n in range(BURST)]
            wait_acknowledged(futures, 300)
            before_restart = acknowledged_so_far(futures)
            postgres_server.restart(mode)
            statuses = [future.result()[1] for future in futures]
        acknowledged = acknowledged_ids(futures)
        ready = requests.get(f"{server.url}/ready", timeout=10)
        after = post(server.url, BURST)

    assert set(statuses) <= {200, 503}  # refused while it was down, as JSON, never dropped
    assert before_restart < BURST - 300 and len(acknowledged) > before_restart + 300
    assert ready.status_code == 200 and after == (f"crash-{BURST}", 200)
    assert acknowledged <= stored_request_ids(database)
    print(f"{mode}: {len(acknowledged)} acknowledged, {statuses.count(503)} refused with 503")


def test_postgresql_down_is_503_and_unready_until_it_is_back(tmp_path, postgres_server):
    database = {"DATABASE_URL": postgres_server.database()}
    env = logger_env(database, DB_BUSY_TIMEOUT="1")
    with GunicornServer("logger", tmp_path, env=env) as server, requests.Session() as http:
        stored_before = http.post(f"{server.url}/process", json={"data": "before"}, timeout=10)
        postgres_server.stop()
        try:
            refused = http.post(f"{server.url}/process", json={"data": "refused"}, timeout=10)
            unready = http.get(f"{server.url}/ready", timeout=10)
            logs = http.get(f"{server.url}/logs", timeout=10)
            health = http.get(f"{server.url}/health", timeout=10)
        finally:
            postgres_server.start()
        wait_until(lambda: http.get(f"{server.url}/ready", timeout=10).status_code == 200,
                   what="the logger ready once PostgreSQL is back")
        stored_after = http.post(f"{server.url}/process", json={"data": "after"}, timeout=10)
        stored = http.get(f"{server.url}/logs", timeout=10).json()["records"]

    assert stored_before.status_code == 200 and stored_after.status_code == 200
    assert refused.status_code == 503
    assert refused.json()["message"] == "Could not record the input: storage is unavailable."
    assert unready.status_code == 503
    assert "connection" in unready.json()["errors"]["database"]
    assert logs.status_code == 503 and logs.json()["message"].startswith("Could not read")
    assert health.status_code == 200  # alive, only not ready
    assert [record["data"] for record in stored] == ["after", "before"]


def in_own_mount_namespace(script, as_ordinary_user=False):
    """A command prefix that runs script, then the command, in a mount namespace of its own.

    Disks can then be mounted for the logger alone, without touching the machine's. When
    not root, the namespace is in a user namespace where the caller is root; with
    as_ordinary_user, the command then runs in one more, as a user that is not root
    there (PostgreSQL refuses to run as root).
    """
    if os.geteuid() == 0:
        unshare, then = ["unshare", "-m"], ""
    else:
        unshare = ["unshare", "-rm"]
        then = "unshare --user --map-user=65534 --map-group=65534 " if as_ordinary_user else ""
    return [*unshare, "sh", "-c", f'set -e\n{script}\nexec {then}"$@"', "sh"]


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


def incompressible_text(length):
    """Text PostgreSQL's TOAST compression cannot shrink: each record takes its length."""
    return "".join(random.choices(string.ascii_letters + string.digits, k=length))


def test_a_full_postgresql_disk_gives_503_and_unready_never_a_200_for_an_input_not_stored(
        tmp_path):
    """The logger's database in a tablespace on a 1 MiB tmpfs, mounted in PostgreSQL's own
    mount namespace: a real ENOSPC as its tables grow (its write-ahead log stays on the
    ordinary disk, as it does where the log has a volume of its own)."""
    server = PostgresServer()
    small_disk = server.dir / "small-disk"
    small_disk.mkdir()
    owner = ",uid=65534,gid=65534" if os.geteuid() == 0 else ""  # the server's user
    server.wrapper = in_own_mount_namespace(
        f'mount -t tmpfs -o size=1m,mode=0700{owner} tmpfs "{small_disk}"',
        as_ordinary_user=True)
    with server:
        with server.admin() as conn:
            conn.execute(f"CREATE TABLESPACE small_disk LOCATION '{small_disk}'")
        # The logger's tables on the small disk: the database's own catalog stays apart.
        database = {"DATABASE_URL": server.database()}
        with server.admin(database["DATABASE_URL"].rsplit("/", 1)[1]) as conn:
            conn.execute(f"ALTER DATABASE {conn.info.dbname} SET default_tablespace = small_disk")
        env = logger_env(database, WORKERS="1")
        statuses = []
        with GunicornServer("logger", tmp_path, env=env) as logger, requests.Session() as http:
            for n in range(1000):  # 1,000 x 8 KiB: well past 1 MiB
                response = http.post(f"{logger.url}/process",
                                     json={"data": f"{n:04d}" + incompressible_text(8192)},
                                     timeout=10)
                statuses.append(response.status_code)
                if response.status_code == 503:
                    body = response.json()
                    assert body["message"] == "Could not record the input: storage is unavailable."
                    break
            ready = http.get(f"{logger.url}/ready", timeout=10)
            stored = http.get(f"{logger.url}/logs?limit=500", timeout=10).json()["records"]
            health = http.get(f"{logger.url}/health", timeout=10)

    assert statuses[-1] == 503 and set(statuses[:-1]) == {200}
    assert ready.status_code == 503
    assert "No space left on device" in ready.json()["errors"]["database"]
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
