"""A PostgreSQL server of the tests' own: Debian's PostgreSQL, initialised and run by an
ordinary user (nobody, when the tests run as root: initdb refuses root) in a temporary
folder, on a loopback port; started and removed by the tests themselves.

The postmaster runs in the foreground as the tests' child, so that stopping it is a
signal (PostgreSQL's own shutdown modes) and a wrapper can run it in a mount namespace.
"""

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from tests.support import free_port

INSTALL_HINT = "sudo apt-get install -y postgresql (make test-tools installs it)"
# PostgreSQL's shutdown modes, by the signal the postmaster takes for each.
SHUTDOWN_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT,
                    "immediate": signal.SIGQUIT}


def postgres_bin_dir():
    """The folder of Debian's PostgreSQL server programs, the newest installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(Path(path).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError(f"PostgreSQL's server programs are missing: {INSTALL_HINT}")


class PostgresServer:
    """One PostgreSQL cluster: start(), database() for a fresh database's URL, stop(mode),
    restart(mode), remove(). wrapper: a command that runs the postmaster; it must exec it."""

    def __init__(self, wrapper=()):
        self.bin_dir = postgres_bin_dir()
        self.wrapper = list(wrapper)
        self.dir = Path(tempfile.mkdtemp(prefix="tests-postgres-"))
        self.data_dir = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.port = free_port()
        self.process = None
        self.as_owner = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "nobody", "nogroup")
            # setpriv execs the program (runuser would stay its parent and keep signals).
            self.as_owner = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

    def start(self, timeout=60):
        """Start the server (initialising its cluster the first time) and wait for it."""
        if not self.data_dir.exists():
            initdb = subprocess.run(
                [*self.as_owner, str(self.bin_dir / "initdb"), "-D", str(self.data_dir),
                 "-U", "postgres", "-E", "UTF8", "--locale=C", "--auth=trust", "--no-sync"],
                capture_output=True, text=True, timeout=120)
            assert initdb.returncode == 0, f"initdb failed:\n{initdb.stdout}{initdb.stderr}"
        log_file = open(self.log_path, "ab")
        # Loopback TCP only; its Unix socket in its own folder, not /var/run/postgresql.
        self.process = subprocess.Popen(
            [*self.wrapper, *self.as_owner, str(self.bin_dir / "postgres"),
             "-D", str(self.data_dir), "-p", str(self.port), "-k", str(self.dir),
             "-c", "listen_addresses=127.0.0.1"],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        log_file.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited early:\n{self.log()}")
            try:
                with self.admin():
                    return self
            except psycopg.OperationalError:  # not listening yet, or still recovering
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PostgreSQL not up after {timeout}s:\n{self.log()}") from None
                time.sleep(0.05)

    def stop(self, mode="fast", timeout=60):
        """Stop the server: fast (clients disconnected, a clean shutdown) or immediate (as
        a crash: the next start recovers from the write-ahead log)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(SHUTDOWN_SIGNALS[mode])
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def restart(self, mode="fast"):
        self.stop(mode)
        return self.start()

    def url(self, database="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, database="postgres"):
        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=5)

    def database(self):
        """Create an empty database and return its URL."""
        name = f"logger_{uuid.uuid4().hex[:12]}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop(self, url):
        """Drop a database made by database(), whoever is still connected to it."""
        name = url.rsplit("/", 1)[1]
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def remove(self):
        """Stop the server if it runs and delete its folder."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.remove()
            raise

    def __exit__(self, *exc):
        self.remove()
