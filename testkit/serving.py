"""Running `poller` in a child process while a test watches its log and its database."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from testkit.support import REPO

# Prelude that makes each mail take DELAY seconds, so a test can act in the middle of a pass.
SLOW = """
import time
import poller.service.handling as _h
_original = _h.NewMail._handle_one
def _slow(self, *args, **kwargs):
    time.sleep({delay})
    return _original(self, *args, **kwargs)
_h.NewMail._handle_one = _slow
"""


class Child:
    """`poller --config CONFIG ARGS...` in a child Python; its stderr collected line by line."""

    def __init__(self, config: Path, *args: str, prelude: str = "", verbose: bool = False):
        argv = ["--config", str(config), *(["-v"] if verbose else []), *args]
        code = f"{prelude}\nfrom poller.cli import main\nraise SystemExit(main({argv!r}))"
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def wait_for(self, text: str, times: int = 1, timeout: float = 30) -> None:
        """Wait until TEXT has appeared in TIMES log lines; fail with the log if it does not."""
        wait_until(lambda: self.count(text) >= times or self.process.poll() is not None, timeout,
                   lambda: f"{text!r} not logged {times}x\n{self.log}")
        time.sleep(0.05 if self.process.poll() is not None else 0)  # the last lines
        assert self.count(text) >= times, \
            f"{text!r} not logged {times}x; exited with {self.process.poll()}\n{self.log}"

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait for the exit code."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def wait_until(condition: Callable[[], bool], timeout: float = 30,
               message: Callable[[], str] = lambda: "condition not met") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {message()}")
        time.sleep(0.02)


def query(db: Path, sql: str) -> list[tuple]:
    """Run a read-only query on the ticket database (empty list while it does not exist)."""
    if not db.exists():
        return []
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute(sql).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        connection.close()


def count_tickets(db: Path) -> int:
    rows = query(db, "SELECT count(*) FROM ticket")
    return rows[0][0] if rows else 0


def append_many(account, mails: list[bytes]) -> None:
    """Append mails to INBOX over one connection (the harness logs in once per mail)."""
    client = account.client()
    try:
        for raw in mails:
            client.append("INBOX", raw)
    finally:
        client.logout()
