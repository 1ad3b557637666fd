"""The worker's handle on one reading helper process (poller.service.reading_helper): start it,
feed it chunks, wait for its readings with a deadline, tell a hung helper from a busy one, end
it. poller.service.reader decides what to give it and what to do when it fails.
"""

from __future__ import annotations

import logging
import mmap
import os
import pickle
import queue
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

import poller
from poller.ates.reading import Reading
from poller.errors import ReaderError
from poller.mail.printable import printable
from poller.service.reading_helper import PAGE, READY, receive, send

if TYPE_CHECKING:
    from poller.ates.mailrules import RuleSet

# A helper that begins no mail for this many times the CPU budget (wall time) while it used
# less than half the budget of CPU is hung (waiting on something that will not come)...
HANG_FACTOR = 3
# ...and one that begins none for this many times the budget is taken as hung whatever it does.
HANG_LIMIT = 10
# Seconds a new helper may take to start and say it is ready; and to send one message.
START_SECONDS = 30.0


@dataclass
class Batch:
    """A chunk given to the helper: its mails in order, until their readings come back."""

    id: int
    mails: list[tuple[int, bytes]]
    now: datetime
    seconds: int
    rules: RuleSet | None = None  # for mail without a token (poller.ates.mailrules)


class HelperProcess:
    """One helper process, and a thread that feeds it chunks (a send may wait for the helper
    to take them; the worker reads the answers itself, never waiting without a deadline)."""

    def __init__(self, function: str):
        self.page = _shared_page()
        feed, their_feed = socket.socketpair()
        answers, their_answers = socket.socketpair()
        fds = (their_feed.fileno(), their_answers.fileno(), self.page.fileno())
        code = (f"import sys; sys.path.insert(0, {str(Path(poller.__file__).parent.parent)!r}); "
                f"from poller.service.reading_helper import main; main(*{fds!r}, {function!r})")
        # The helper needs no secret: the settings' environment overrides stay here.
        env = {key: value for key, value in os.environ.items() if not key.startswith("POLLER_")}
        try:
            self.process = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
                [sys.executable, "-c", code], pass_fds=fds, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, env=env)
        except OSError as exc:
            for sock in (feed, answers):
                sock.close()
            raise ReaderError(f"the reading helper could not be started: {exc}") from None
        finally:
            their_feed.close()
            their_answers.close()
        self.feed, self.answers = feed, answers
        self.answers.settimeout(START_SECONDS)  # for the rest of a message once it has begun
        self.map = mmap.mmap(self.page.fileno(), PAGE.size)
        self.batches: deque[Batch] = deque()  # given to the helper, not all read back yet
        self.partial: dict[int, Reading] = {}  # readings of the first batch so far
        self.ready = self.dead = False
        self.begun = 0  # mails the helper had begun when last looked at
        self.since = time.monotonic()  # when it last showed progress
        self.hung_after = 0.0  # seconds without progress before it was taken as hung
        self.outbox: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self.feeder = threading.Thread(target=self._feed, name="reader-feed", daemon=True)
        self.feeder.start()

    def submit(self, batch: Batch) -> None:
        if not self.batches:
            self.since = time.monotonic()
        self.batches.append(batch)
        self.outbox.put(batch)

    def progress(self) -> tuple[int, int, float]:
        """Return (mails begun, UID of the last one begun, the helper's CPU seconds then)."""
        return PAGE.unpack_from(self.map, 0)

    def wait(self, stop: threading.Event | None) -> dict[int, Reading] | None:
        """Return the readings of the first batch; None if the helper died or hung first, or
        STOP was set."""
        while not (stop is not None and stop.is_set()):
            try:
                message = self._receive(0.25)
            except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError,
                    AttributeError, ImportError, IndexError):
                self.dead = True  # gone, or cut off in the middle of a message
                return None
            if message is None:
                if self._hung():
                    return None
            elif message[0] == READY:
                self.ready, self.since = True, time.monotonic()
            elif message[0] == "log":
                _, level, name, text = message
                # a library's words about a mail quote the mail: escaped, on one line
                logging.getLogger(printable(name)).log(level, "%s", printable(text))
            else:
                _, batch_id, readings, last = message
                assert self.batches[0].id == batch_id, (self.batches[0].id, batch_id)
                self.partial.update(readings)
                self.since = time.monotonic()
                if last:
                    self.batches.popleft()
                    readings, self.partial = self.partial, {}
                    return readings
        return None

    def close(self, wait: float = 2.0) -> int | None:
        """End the helper and return its exit code: one that is still reading or starting is
        killed at once; an idle one ends when its socket closes; one that died is reaped."""
        if (self.batches or not self.ready) and not self.dead:
            self.process.kill()
        self.outbox.put(None)
        for sock in (self.feed, self.answers):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self.process.wait(wait)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.feeder.join(wait)
        for closing in (self.feed, self.answers, self.map, self.page):
            closing.close()
        return self.process.returncode

    def _receive(self, timeout: float) -> tuple | None:
        """Return the next message, or None when none begins within TIMEOUT seconds."""
        if not select.select([self.answers], [], [], timeout)[0]:
            return None
        message = receive(self.answers)
        assert isinstance(message, tuple)
        return message

    def _hung(self) -> bool:
        """Return True when the helper has been without progress too long for what it does."""
        begun, _, cpu = self.progress()
        now = time.monotonic()
        if begun != self.begun:
            self.begun, self.since = begun, now
        waited = now - self.since
        if not self.ready:
            hung = waited > START_SECONDS
        elif not self.batches:
            hung = False
        else:
            budget = self.batches[0].seconds
            # Busy on the CPU, the helper is ended by its CPU limit; waiting, it never would be.
            hung = waited > HANG_LIMIT * budget or (
                waited > HANG_FACTOR * budget and _cpu(self.process.pid) - cpu < budget / 2)
        if hung:
            self.hung_after = waited
        return hung

    def _feed(self) -> None:
        while (batch := self.outbox.get()) is not None:
            try:
                send(self.feed, (batch.id, [(uid, len(raw)) for uid, raw in batch.mails],
                                 batch.now, batch.seconds, batch.rules),
                     *(raw for _, raw in batch.mails))
            except OSError:
                return  # the helper is gone; wait() finds out
            del batch  # not to hold the mail while waiting for the next


def _shared_page() -> IO[bytes]:
    """Return a file (fd) of one page, to be mapped by the worker and its helper."""
    if hasattr(os, "memfd_create"):
        page = os.fdopen(os.memfd_create("ates-poller-reader"), "r+b")
    else:
        page = tempfile.TemporaryFile()
    page.truncate(PAGE.size)
    return page


def _cpu(pid: int) -> float:
    """Return the CPU seconds process pid has used (0.0 when that cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def ended(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {-code}, {name}"
    return f"exit code {code}"
