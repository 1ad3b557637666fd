"""The worker's Reader: mail read in a helper process, bounded in time, one chunk read ahead,
memory by bytes.

Which name is which: a Reading (poller.ates.reading) is what reading one mail gives, and `read`
the pure function that makes it; the reading helper is the process that calls it (its code:
poller.service.reading_helper); HelperProcess (poller.service.helper_process) is the worker's
handle on one such process; the Reader (here) gives it the chunks of a pass, and replaces it,
blaming the mail it was reading, when it fails.

Reading (MIME, token, HTML) is most of the work per mail, needs nothing from the store, and is
where hostile mail does its worst. So every mail is read in a helper process, never in the
worker:

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
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from poller.ates.policy import LimitSettings
from poller.ates.reading import Reading, read, too_large
from poller.errors import ReaderError
from poller.mail.fingerprint import fingerprint
from poller.service.helper_process import START_SECONDS, Batch, HelperProcess, ended

if TYPE_CHECKING:
    from poller.ates.mailrules import RuleSet

logger = logging.getLogger(__name__)

Chunk = tuple[list[int], dict[int, Reading]]
ReadFunction = Callable[[int, bytes, datetime], Reading]
# What the helper calls per mail (tests point it at misbehaving readers). A function the helper
# can import by its module and name: it runs in another interpreter.
READ: ReadFunction = read


class Reader:
    """Reads mail in a helper process (started when first needed, replaced when it fails).
    Use as a context manager, or call close()."""

    def __init__(self, read: ReadFunction | None = None):
        function = read or READ
        self.function = f"{function.__module__}:{function.__qualname__}"
        self._helper: HelperProcess | None = None
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
            batch = Batch(next(self._ids), [(uid, raws[uid]) for uid in uids if uid in raws],
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

    def _submit(self, batch: Batch) -> None:
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
        batches: list[Batch] = []
        if old is not None:
            batches, ready = list(old.batches), old.ready
            hung = old.hung_after if not old.dead else 0.0
            begun, uid, _ = old.progress()
            code = old.close(wait=5.0)
            if not ready:
                why = (f"did not start within {START_SECONDS:.0f} s" if hung else
                       f"ended while starting ({ended(code)}); see the lines above")
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
        self._helper = HelperProcess(self.function)
        for batch in batches:
            self._helper.submit(batch)


def _reason(seconds: int, code: int | None, hung: float) -> str:
    """Return why a mail was not read, for its quarantine reason."""
    if hung:
        return (f"reading it did not finish within {hung:.0f} s (the reading helper was "
                "stopped)")
    if code == -signal.SIGXCPU:
        return f"reading it took more than {seconds} s of CPU ([limits] max_read_seconds)"
    return f"the reading helper ended while reading it ({ended(code)})"


def read_one(raw: bytes, now: datetime, limits: LimitSettings) -> Reading:
    """Read one mail as a pass does (`poller parse`): refused over [limits] max_message_bytes,
    else in a helper process of its own under the max_read_seconds budget."""
    if len(raw) > limits.max_message_bytes:
        return too_large(len(raw), limits.max_message_bytes)
    with Reader() as reader:
        for _, readings in reader.chunks([[1]], {1: len(raw)}, lambda _: {1: raw}, lambda: now,
                                         budget=len(raw) + 1, seconds=limits.max_read_seconds):
            return readings[1]
    raise ReaderError("the reading helper gave no reading")
