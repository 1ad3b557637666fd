"""One pass over the mailbox: fetch new mail, decide, commit, then flag or move.

The worker only carries decisions out: what each mail gets is poller.ates's to say, also for
mail that was never read (too large, refused by the server), which comes as a Reading with its
problem. Order of effects, per chunk of mail: (1) the decisions and the log rows are committed
in one transaction, (2) the mailbox step runs (flags at once; moves wait for a batch of
UID_BATCH or the end of the pass; poller.service.steps), (3) the log rows are marked done. A
crash between any two steps is repaired by the next pass: a mail with a log row is never
decided again, and a row whose mailbox step is not done has that step repeated, planned from
the settings of the day.

Memory is bounded by bytes: the sizes of the new mail are fetched first, and chunks are cut at
half of [limits] max_fetch_bytes, so that the chunk in hand and the one read ahead fit in it.
Mail is read in a helper process (poller.service.reader), each within [limits]
max_read_seconds. Mail the server will not hand over is quarantined (poller.service.fetching).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from poller.ates.decision import Decision
from poller.ates.lookups import lookups_of
from poller.ates.outcomes import Outcome, StepKind
from poller.ates.reading import Reading, refused_by_server, too_large
from poller.ates.rules import decide, quarantined
from poller.batches import UID_BATCH, sized_chunks
from poller.clock import Clock, utc_now
from poller.errors import MailboxError, MailboxUnavailable, StoreUnavailable
from poller.mail.headers import printable
from poller.service.fetching import Fetcher
from poller.service.pass_config import PassConfig
from poller.service.steps import Due, MailboxSteps, StepsPort
from poller.store.record import LogRow, MessageKey, RecordedMeanwhile, Recorder
from poller.store.store import Store

if TYPE_CHECKING:
    from poller.service.reader import Reader

logger = logging.getLogger(__name__)


class MailboxPort(StepsPort):
    """What a pass needs of the mailbox: poller.imap.mailbox.Mailbox, or a fake in tests."""

    def select(self, folder: str, readonly: bool = False) -> int: ...
    def search(self, criteria: str) -> list[int]: ...
    def ensure_folder(self, folder: str) -> None: ...
    def sizes(self, uids: list[int]) -> dict[int, int]: ...
    def fetch(self, uids: list[int]) -> dict[int, bytes]: ...


@dataclass
class PassResult:
    """What one pass did: counts by outcome, mailbox steps left for the next pass, timing.

    pending counts mailbox steps the server refused for the first time (they are tried again
    next pass); failing those it refused again. interrupted is True when a stop request ended
    the pass before every mail was looked at. lost keeps, across the reconnects of one pass, the
    UIDs whose FETCH lost the connection (with the errors of fetching each alone).
    """

    counts: Counter[str] = field(default_factory=Counter)
    pending: int = 0
    failing: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    lost: dict[int, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{name}={self.counts[name]}" for name in Outcome if self.counts[name]]
        return " ".join(parts) or "nothing new"

    def decided(self) -> int:
        """Return the number of mails decided so far."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class Handled:
    row: LogRow
    key: MessageKey
    decision: Decision
    ticket: str | None


class Worker:
    """Runs passes with one pass configuration against one mailbox connection and one store.

    reader: the helper that reads mail, when the caller keeps one across passes (`serve`);
    without, each pass with new mail starts its own.
    """

    def __init__(self, config: PassConfig, mailbox: MailboxPort, store: Store,
                 clock: Clock = utc_now, stop: threading.Event | None = None,
                 reader: Reader | None = None):
        self.config = config
        self.mailbox = mailbox
        self.store = store
        self.clock = clock
        self.stop = stop or threading.Event()
        self.reader = reader
        self._recorder = Recorder(store, config.attachments_dir, config.subscribed)
        self._moves: list[Due] = []

    def run_pass(self, result: PassResult | None = None) -> PassResult:
        """Handle every new mail in the folder; raise MailboxError if the server goes away.

        Counts are added to RESULT when given (a pass resumed after reconnecting). When the
        stop event is set, the pass ends after the mail in hand, its chunk committed and
        flagged or moved; the rest is left for the next pass.
        """
        started = time.monotonic()
        result = result if result is not None else PassResult()
        config = self.config
        uidvalidity = self.mailbox.select(config.folder)
        uids = self.mailbox.search(config.search)
        self._create_folders()
        steps = MailboxSteps(self.mailbox, self.store, config.policy.mailbox, self.clock, result)
        steps.finish_pending(config.name, config.folder, uidvalidity, set(uids))
        decided = self.store.decided(config.name, config.folder, uidvalidity, uids)
        new = [uid for uid in uids if uid not in decided]
        self._moves = []
        if new:
            with self._reading() as reader:
                reader.start()  # it starts while the sizes and the first chunk are fetched
                self._handle_new(uidvalidity, new, reader, steps, result)
            steps.carry_out(self._moves)
        result.seconds = time.monotonic() - started
        return result

    def _create_folders(self) -> None:
        """Create the folders mail may be moved to, so that a folder the server refuses shows
        at the start of every pass (the steps that need it are left for the next pass)."""
        for folder in self.config.target_folders:
            try:
                self.mailbox.ensure_folder(folder)
            except MailboxUnavailable:
                raise
            except MailboxError as exc:
                logger.error("%s", exc)

    @contextmanager
    def _reading(self) -> Iterator[Reader]:
        if self.reader is None:
            # only a pass with new mail starts a helper (an empty pass does not load it)
            from poller.service.reader import Reader

            with Reader() as reader:
                yield reader
        else:
            try:
                yield self.reader
            finally:
                self.reader.settle()

    def _handle_new(self, uidvalidity: int, new: list[int], reader: Reader,
                    steps: MailboxSteps, result: PassResult) -> None:
        limits = self.config.policy.limits
        fetcher = Fetcher(self.mailbox, result.lost)
        sizes = fetcher.sizes(new)
        unread = {uid: too_large(size, limits.max_message_bytes) for uid, size in sizes.items()
                  if size > limits.max_message_bytes}
        unread.update(_refused(fetcher, new))
        if unread:
            self._handle_chunk(uidvalidity, [uid for uid in new if uid in unread], unread,
                               steps, result)
        fitting = [uid for uid in new if uid in sizes and uid not in unread]
        cut = sized_chunks(fitting, sizes, self.config.fetch_chunk, limits.max_fetch_bytes // 2)
        for uids, readings in reader.chunks(cut, sizes, fetcher.fetch, self.clock,
                                            budget=limits.max_fetch_bytes,
                                            seconds=limits.max_read_seconds, stop=self.stop,
                                            rules=self.config.rules):
            # a chunk read ahead but not handled is simply left for the next pass
            if self.stop.is_set():
                break
            readings.update(_refused(fetcher, uids))
            self._handle_chunk(uidvalidity, uids, readings, steps, result)
            readings = {}  # not to hold this chunk's mail while the next is fetched
        if self.stop.is_set():
            result.interrupted = True

    def _handle_chunk(self, uidvalidity: int, uids: list[int], readings: dict[int, Reading],
                      steps: MailboxSteps, result: PassResult) -> None:
        # A mail without a reading was expunged by someone else after the SEARCH.
        todo = [uid for uid in uids if uid in readings]

        def decide_all(isolate: bool) -> list[tuple[int, Handled]]:
            done: list[tuple[int, Handled]] = []
            # IMMEDIATE: the rules read what they decide on (the same mail, open tickets) under
            # the write lock, so that a mailbox sharing the database waits instead of deciding
            # the same alert at the same time.
            with self.store.db.atomic(lock_type="IMMEDIATE"):
                self.store.check_fence()
                self._recorder.begin()
                self.store.read_ahead(lookups_of(readings.values(), self.config.policy))
                # on PostgreSQL, writes whose result is not read wait for the next that is
                # (not when mail by mail: a savepoint must see its own mail's error)
                try:
                    with nullcontext() if isolate else self.store.db.pipelined():
                        for uid in todo:
                            if self.stop.is_set():
                                result.interrupted = True
                                break
                            done.append((uid, self._handle_one(uidvalidity, uid,
                                                               readings[uid], isolate)))
                        self._recorder.finish()
                finally:
                    self.store.forget_ahead()
            return done

        try:
            handled = decide_all(isolate=False)
        except StoreUnavailable:
            raise  # the database itself is failing (locked, disk full), or the mailbox is
            # another instance's now (LeaseLost): no point going on
        except Exception:  # noqa: BLE001 - redone mail by mail
            # A savepoint per mail costs a quarter of the worker's time, so the chunk is first
            # tried without; when one mail fails, the whole try is rolled back and the chunk is
            # redone with savepoints, which quarantine just the failing mail.
            self.store.forget_cached_udfs()
            handled = decide_all(isolate=True)
        flags: list[Due] = []
        for uid, item in handled:
            result.counts[item.decision.outcome.value] += 1
            logger.info(
                "uid=%s message_id=%s outcome=%s ticket=%s reason=%s",
                uid, printable(item.key.message_id or "-"), item.decision.outcome.value,
                item.ticket or "-", printable(item.decision.reason),
                extra={"mail": {"uid": uid, "message_id": item.key.message_id,
                                "outcome": item.decision.outcome.value, "ticket": item.ticket,
                                "reason": item.decision.reason}},
            )
            step = item.decision.step
            # A MOVE makes Dovecot rewrite the folder's index, at a cost that grows with the
            # folder, so moves wait for a batch (or the end of the pass); their log rows say
            # they are due.
            if step.kind is not StepKind.NONE:
                (flags if step.kind is StepKind.FLAG else self._moves).append(
                    Due(item.row.id(), uid, step))
        steps.carry_out(flags)
        if len(self._moves) >= UID_BATCH:
            steps.carry_out(self._moves)
            self._moves = []

    def _handle_one(self, uidvalidity: int, uid: int, reading: Reading,
                    isolate: bool) -> Handled:
        """Decide on one mail and record it; with isolate, in a savepoint, and a failure
        quarantines just this mail (without, the failure is raised)."""
        now = self.clock()
        name, folder, message = self.config.name, self.config.folder, reading.message
        # a mail that cannot be told from a new one by its fingerprint is its own, by UID
        key = MessageKey(name, folder, uidvalidity, uid, message.message_id if message else None,
                         reading.fingerprint or f"uid:{name}:{folder}:{uidvalidity}:{uid}")
        try:
            with self.store.db.atomic() if isolate else nullcontext():
                # in one go, the log row's id is read at the end (Recorder.finish)
                return self._record(key, decide(reading, self.store, self.config.policy),
                                    reading, now, wait=isolate)
        except RecordedMeanwhile:
            if not isolate:
                raise  # the chunk is redone mail by mail, and this one decided again
            with self.store.db.atomic():  # now the other worker's row is there to see
                return self._record(key, decide(reading, self.store, self.config.policy),
                                    reading, now)
        except StoreUnavailable:
            raise  # the database itself is failing (locked, disk full): no point going on
        except Exception as exc:  # noqa: BLE001 - one mail must never stop the pass
            if not isolate:
                raise
            self.store.forget_cached_udfs()
            logger.exception("uid=%s could not be recorded", uid)
            decision = quarantined(f"internal error: {type(exc).__name__}: {exc}",
                                   self.config.policy)
            return self._record(key, decision, reading, now, with_alert=False)

    def _record(self, key: MessageKey, decision: Decision, reading: Reading, now: datetime,
                with_alert: bool = True, wait: bool = True) -> Handled:
        subject = reading.message.subject if reading.message else ""
        row, ticket, decision = self._recorder.record(
            key, decision, reading.alert if with_alert else None, now, subject, wait)
        return Handled(row, key, decision, ticket)


def _refused(fetcher: Fetcher, uids: list[int]) -> dict[int, Reading]:
    """Return the readings of the UIDS the server refused to hand over (taken from FETCHER)."""
    return {uid: refused_by_server(fetcher.refused.pop(uid)) for uid in uids
            if uid in fetcher.refused}
