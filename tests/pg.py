"""A throwaway PostgreSQL server for the tests that need one: ``postgres_url``.

The fixture runs Debian's ``initdb`` in a temporary directory, starts ``postgres`` on a
free port on 127.0.0.1, creates a database and yields its URL; at the end (also when a
test fails) it stops the server and removes the directory. PostgreSQL refuses to run as
root, so as root both run as the unprivileged ``nobody``, who owns the directory.

Without PostgreSQL binaries the tests that use it are skipped, unless
``EDGESHARE_REQUIRE_POSTGRES=1`` (``make test`` sets it, after installing them).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from edgeshare.chain import get_free_port

REQUIRE_ENV = "EDGESHARE_REQUIRE_POSTGRES"
SUPERUSER = "edgeshare"
DATABASE = "edgeshare_test"
UNPRIVILEGED = "nobody"


def find_postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``postgres`` and ``initdb``."""
    found = glob.glob("/usr/lib/postgresql/*/bin/postgres")
    found.sort(
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
    )
    for server in reversed(found):
        folder = Path(server).parent
        if (folder / "initdb").exists():
            return folder
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    return None


def _as_user() -> list[str]:
    """The prefix that drops root to ``nobody`` (nothing when not root)."""
    if os.geteuid() != 0:
        return []
    user = pwd.getpwnam(UNPRIVILEGED)
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            "--reset-env", "--"]  # fmt: skip


def _wait_ready(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Wait until the server accepts connections (or fail with its log)."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited ({server.returncode}):\n{log.read_text()}")
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start:\n{log.read_text()}") from None
            time.sleep(0.1)


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server this fixture started: a fast shutdown, then a kill if it hangs."""
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A ``postgresql://`` URL of an empty database on a server of this module's own."""
    folder = find_postgres_bin()
    if folder is None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but no PostgreSQL binaries (/usr/lib/postgresql/*/bin)")
        pytest.skip("PostgreSQL is not installed (make test installs it)")
    with running_postgres(folder) as url:
        yield url


@contextmanager
def running_postgres(folder: Path) -> Iterator[str]:
    """Start a throwaway server from the binaries in ``folder``; yields the URL of an empty
    database; stops the server and removes its directory at the end, however it ends."""
    root = Path(tempfile.mkdtemp(prefix="edgeshare-pg-", dir="/tmp"))
    server: subprocess.Popen[bytes] | None = None
    try:
        if os.geteuid() == 0:
            user = pwd.getpwnam(UNPRIVILEGED)
            os.chown(root, user.pw_uid, user.pw_gid)
        data, log = root / "data", root / "postgres.log"
        subprocess.run(
            [*_as_user(), str(folder / "initdb"), "-D", str(data), "-U", SUPERUSER,
             "--auth=trust", "-E", "UTF8", "--no-sync"],
            cwd=root, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        port = get_free_port()
        with log.open("wb") as out:
            server = subprocess.Popen(
                [*_as_user(), str(folder / "postgres"), "-D", str(data), "-p", str(port),
                 "-h", "127.0.0.1", "-k", str(root), "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                cwd=root, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        admin = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
        _wait_ready(admin, server, log, timeout=60)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        yield f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if server is not None:
            _stop(server)
        shutil.rmtree(root, ignore_errors=True)


def create_database(url: str, name: str) -> str:
    """Create the database ``name`` on the server of ``url``; returns its URL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + "/" + name
