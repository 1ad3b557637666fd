"""A private PostgreSQL for the tests: Debian's server binaries (scripts/prepare installs them),
a cluster made with initdb in a temporary folder under /tmp owned by the postgres user, started
with pg_ctl on a loopback port picked at run time. Never the system's cluster.

Each test gets a database of its own (`database()`), dropped with `drop()`.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "postgres"


def binaries() -> Path:
    """Return the newest /usr/lib/postgresql/N/bin holding initdb; RuntimeError when none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
                           "run scripts/prepare, or apt-get install postgresql")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """One private PostgreSQL server on 127.0.0.1."""

    def __init__(self) -> None:
        self.bin = binaries()
        self.dir = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
        self.port = 0
        self._counter = itertools.count(1)
        self._admin = None

    def _as_postgres(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        # initdb refuses to run as root: the server runs as the postgres user
        command = list(args) if os.geteuid() != 0 else ["runuser", "-u", USER, "--", *args]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=60)

    def start(self) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(USER)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-U", USER,
                          "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        last = ""
        for _ in range(3):  # a port taken between the pick and the bind: try another
            self.port = _free_port()
            done = self._as_postgres(
                str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-l",
                str(self.dir / "log"), "-w", "-t", "30", "-o",
                f"-k {self.dir} -h 127.0.0.1 -p {self.port} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                "start", check=False)
            if done.returncode == 0:
                return
            last = done.stderr + self.log()
        raise RuntimeError(f"PostgreSQL did not start: {last}")

    def log(self) -> str:
        try:
            return (self.dir / "log").read_text(errors="replace")
        except OSError:
            return ""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run one statement as the superuser, outside a transaction."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as con:
            con.execute(sql)

    def database(self) -> str:
        """Create an empty database; return its URL."""
        name = f"t{next(self._counter)}_{uuid.uuid4().hex[:8]}"
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    @contextmanager
    def scratch_database(self) -> Iterator[str]:
        """Give the block an empty database (its URL); afterwards this process's engine for
        it is closed and the database dropped."""
        url = self.database()
        try:
            yield url
        finally:
            from poller.store.database import close_database

            close_database(url)
            self.drop(url)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Stop the server at once and remove its folder."""
        if self.port:
            done = self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"),
                                     "-m", "immediate", "-w", "stop", check=False)
            if done.returncode != 0:
                self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _kill(self) -> None:
        try:
            pid = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass
