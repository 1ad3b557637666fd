"""Reading mail in a helper process: bounded in time, one chunk read ahead, memory by bytes.

Reading (poller.ates.reading: MIME, token, HTML) is most of the work per mail, needs nothing
from the store, and is where hostile mail does its worst. So every mail is read in a helper
process (poller.service.helper), never in the worker:

* Bounded: the helper reads each mail under a CPU limit ([limits] max_read_seconds), and the
  worker never waits for it without a deadline: a helper that begins no new mail for
  HANG_FACTOR times that long while it hardly uses the CPU (so the limit would never end it),
  or for HANG_LIMIT times that long in any case, is killed. A mail during which the helper
  ends, by the limit, a crash or a kill, comes back as a Reading with the reason (and is
  quarantined); a new helper reads the rest.
* Safe to start from a process with threads (`serve`: scheduler, IDLE, signals): the helper is
  a new interpreter (fork + exec), so no lock another thread held at the fork comes along.
* Fast: while the worker records and flags one chunk, the helper reads the next, so the two
  halves run on two cores; a chunk of small mail crosses in one message each way (large mail
  comes back as it is read, not to be held in both processes). In `serve` the helper stays up
  between passes; `once` starts it when there is new mail (about 0.1 s, while the sizes and
  the first chunk are fetched).

The helper only ever reads; every decision, write and mailbox step stays in the worker, in
order, so exactly-once is unchanged.
"""

from __future__ import annotations

import itertools
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import poller
from poller.ates.mailrules import RuleSet
from poller.ates.reading import Reading
from poller.errors import ReaderError
from poller.mail.fingerprint import fingerprint
from poller.service.helper import PAGE, READY, receive, send

logger = logging.getLogger(__name__)

# What the helper calls per mail, as 'module:name' (tests point it at misbehaving readers).
READ_FUNCTION = "poller.ates.reading:read"
# A helper that begins no mail for this many times the CPU budget (wall time) while it used
# less than half the budget of CPU is hung (waiting on something that will not come)...
HANG_FACTOR = 3
# ...and one that begins none for this many times the budget is taken as hung whatever it does.
HANG_LIMIT = 10
# Seconds a new helper may take to start and say it is ready; and to send one message.
START_SECONDS = 30.0

Chunk = tuple[list[int], dict[int, Reading]]


@dataclass
class _Batch:
    """A chunk given to the helper: its mails in order, until their readings come back."""

    id: int
    mails: list[tuple[int, bytes]]
    now: datetime
    seconds: int
    rules: RuleSet | None = None


class _Helper:
    """One helper process, and a thread that feeds it chunks (a send may wait for the helper
    to take them; the worker reads the answers itself, never waiting without a deadline)."""

    def __init__(self, function: str):
        self.page = _shared_page()
        feed, their_feed = socket.socketpair()
        answers, their_answers = socket.socketpair()
        fds = (their_feed.fileno(), their_answers.fileno(), self.page.fileno())
        code = (f"import sys; sys.path.insert(0, {str(Path(poller.__file__).parent.parent)!r}); "
                f"from poller.service.helper import main; main(*{fds!r}, {function!r})")
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
        self.batches: deque[_Batch] = deque()  # given to the helper, not all read back yet
        self.partial: dict[int, Reading] = {}  # readings of the first batch so far
        self.ready = self.dead = False
        self.begun = 0  # mails the helper had begun when last looked at
        self.since = time.monotonic()  # when it last showed progress
        self.hung_after = 0.0  # seconds without progress before it was taken as hung
        self.outbox: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self.feeder = threading.Thread(target=self._feed, name="reader-feed", daemon=True)
        self.feeder.start()

    def submit(self, batch: _Batch) -> None:
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
                logging.getLogger(name).log(level, "%s", text)
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


class Reader:
    """Reads mail in a helper process (started when first needed, replaced when it fails).
    Use as a context manager, or call close()."""

    def __init__(self, function: str | None = None):
        self.function = function or READ_FUNCTION
        self._helper: _Helper | None = None
        self._failed: dict[int, Reading] = {}  # from a helper that ended: read, or made up
        self._ids = itertools.count(1)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the helper now unless it runs (it starts while the caller goes on)."""
        if self._helper is None or self._helper.dead:
            self._replace()

    def close(self) -> None:
        helper, self._helper = self._helper, None
        if helper is not None:
            helper.close()
        self._failed.clear()

    def settle(self) -> None:
        """Forget what a pass left unread; a helper still reading some of it is stopped."""
        if self._helper is not None and (self._helper.batches or self._helper.dead):
            self.close()
        self._failed.clear()

    def chunks(self, plan: Iterable[list[int]], sizes: Mapping[int, int],
               fetch: Callable[[list[int]], dict[int, bytes]], clock: Callable[[], datetime], *,
               budget: int, seconds: int, stop: threading.Event | None = None,
               rules: RuleSet | None = None) -> Iterator[Chunk]:
        """Fetch and read each chunk of UIDs; yield (uids, readings of those fetched) in order.
        A mail without a token is given to RULES, when there are any.

        The next chunk is fetched and read while the caller handles one, as long as both fit in
        BUDGET bytes together (a chunk alone always goes). Each mail may take SECONDS of CPU to
        read. Stops early, without yielding the chunk in hand, when STOP is set.
        """
        ahead: deque[tuple[list[int], int]] = deque()  # (uids, bytes), given to the helper
        held = 0
        for uids in plan:
            size = sum(sizes.get(uid, 0) for uid in uids)
            while ahead and (len(ahead) > 1 or held + size > budget):
                done, done_size = ahead.popleft()
                chunk = self._collect(done, stop)
                if chunk is None:
                    return
                yield chunk
                chunk = None  # not to hold its mail while the next is fetched
                held -= done_size
            raws = fetch(uids)
            batch = _Batch(next(self._ids), [(uid, raws[uid]) for uid in uids if uid in raws],
                           clock(), seconds, rules)
            del raws
            self._submit(batch)
            ahead.append((uids, size))
            held += size
        while ahead:
            chunk = self._collect(ahead.popleft()[0], stop)
            if chunk is None:
                return
            yield chunk

    def _submit(self, batch: _Batch) -> None:
        if self._helper is None or self._helper.dead:
            self._replace()
        assert self._helper is not None
        self._helper.submit(batch)

    def _collect(self, uids: list[int], stop: threading.Event | None) -> Chunk | None:
        """Return the readings of the oldest chunk given to the helper (made up with the reason
        for a mail during which the helper ended); None when STOP was set first."""
        while True:
            assert self._helper is not None
            readings = self._helper.wait(stop)
            if readings is not None:
                break
            if stop is not None and stop.is_set():
                return None
            self._replace()  # the new helper is given the chunk again, less that mail
        for uid in uids:
            if uid in self._failed:
                readings[uid] = self._failed.pop(uid)
        return uids, readings

    def _replace(self) -> None:
        """End the helper (if any), blame the mail it was reading, and start a new one that is
        given the rest of the mail."""
        old, self._helper = self._helper, None
        batches: list[_Batch] = []
        if old is not None:
            batches, ready = list(old.batches), old.ready
            hung = old.hung_after if not old.dead else 0.0
            begun, uid, _ = old.progress()
            code = old.close(wait=5.0)
            if not ready:
                why = (f"did not start within {START_SECONDS:.0f} s" if hung else
                       f"ended while starting ({_ended(code)}); see the lines above")
                raise ReaderError(f"the reading helper {why}")
            if batches:
                first = batches[0]
                self._failed.update(old.partial)
                if begun and any(m == uid for m, _ in first.mails) and uid not in old.partial:
                    raw = dict(first.mails)[uid]
                    reason = _reason(first.seconds, code, hung)
                    logger.warning("uid=%s: %s; reading the rest in a new helper", uid, reason)
                    self._failed[uid] = Reading(None, None, reason, False,
                                                fingerprint(None, raw))
                first.mails = [(m, r) for m, r in first.mails if m not in self._failed]
        self._helper = _Helper(self.function)
        for batch in batches:
            self._helper.submit(batch)


def _shared_page() -> IO[bytes]:
    """Return a file (fd) of one page, to be mapped by the worker and its helper."""
    if hasattr(os, "memfd_create"):
        page = os.fdopen(os.memfd_create("ates-poller-reader"), "r+b")
    else:
        page = tempfile.TemporaryFile()
    page.truncate(PAGE.size)
    return page


def _reason(seconds: int, code: int | None, hung: float) -> str:
    """Return why a mail was not read, for its quarantine reason."""
    if hung:
        return (f"reading it did not finish within {hung:.0f} s (the reading helper was "
                "stopped)")
    if code == -signal.SIGXCPU:
        return f"reading it took more than {seconds} s of CPU ([limits] max_read_seconds)"
    return f"the reading helper ended while reading it ({_ended(code)})"


def _cpu(pid: int) -> float:
    """Return the CPU seconds process pid has used (0.0 when that cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _ended(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {-code}, {name}"
    return f"exit code {code}"
