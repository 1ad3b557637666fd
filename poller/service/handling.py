"""The new mail of one pass, one path per mail: read in chunks by the helper, decided, recorded
and flagged; moves wait for a batch (poller.service.steps).

Order of effects, per chunk of mail: (1) the decisions and the log rows are committed in one
transaction, (2) the mailbox step runs (flags at once; moves wait for a batch of UID_BATCH or
the end of the pass), (3) the log rows are marked done. A crash between any two steps is
repaired by the next pass: a mail with a log row is never decided again, and a row whose
mailbox step is not done has that step repeated, planned from the settings of the day.

Memory is bounded by bytes: the sizes of the new mail are learnt first (a SEARCH names the mail
larger than its share of a chunk, whose sizes are fetched; poller.service.fetching), and chunks
are cut at half of [limits] max_fetch_bytes, so that the chunk in hand and the one read ahead
fit in it.
Mail is read in a helper process (poller.service.reader), each within [limits]
max_read_seconds. Mail the server will not hand over is quarantined (poller.service.fetching).
Loaded by a pass that finds new mail: the rules, the recorder and the helper's readings are
not an empty pass's to import.
"""

from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from poller.ates.decision import Decision
from poller.ates.lookups import lookups_of
from poller.ates.outcomes import StepKind
from poller.ates.reading import Reading, refused_by_server, too_large
from poller.ates.rules import decide, quarantined
from poller.batches import UID_BATCH, sized_chunks
from poller.clock import Clock
from poller.errors import StoreUnavailable
from poller.mail.printable import printable
from poller.service.fetching import Fetcher, Fetching
from poller.service.pass_config import PassConfig
from poller.service.steps import Due, MailboxSteps
from poller.store.record import LogRow, MessageKey, RecordedMeanwhile, Recorder
from poller.store.store import Store

if TYPE_CHECKING:
    from poller.service.pass_result import PassResult
    from poller.service.reader import Reader

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Handled:
    row: LogRow
    key: MessageKey
    decision: Decision
    ticket: str | None


class NewMail:
    """Handles the new mail of one pass of one folder; counts go to RESULT, mailbox steps to
    STEPS. When STOP is set, the mail in hand is finished and the rest left for the next pass."""

    def __init__(self, config: PassConfig, mailbox: Fetching, store: Store, clock: Clock,
                 stop: threading.Event, steps: MailboxSteps, result: PassResult):
        self.config = config
        self.mailbox = mailbox
        self.store = store
        self.clock = clock
        self.stop = stop
        self.steps = steps
        self.result = result
        self.recorder = Recorder(store, config.attachments_dir, config.subscribed)
        self.moves: list[Due] = []  # flagged mail is flagged per chunk; moves wait

    def handle(self, uidvalidity: int, new: list[int], reader: Reader) -> None:
        """Decide on and record the NEW mail (UIDs) in chunks READER reads, flag it; moves are
        left in self.moves for the end of the pass (or a batch of them)."""
        result = self.result
        limits = self.config.policy.limits
        fetcher = Fetcher(self.mailbox, result.lost)
        # what each mail may take of a chunk's half of the budget, when chunks are full
        share = min(limits.max_fetch_bytes // 2 // self.config.fetch_chunk,
                    limits.max_message_bytes)
        sizes = fetcher.sizes(new, share)
        unread = {uid: too_large(size, limits.max_message_bytes) for uid, size in sizes.items()
                  if size > limits.max_message_bytes}
        unread.update(_refused(fetcher, new))
        if unread:
            self._handle_chunk(uidvalidity, [uid for uid in new if uid in unread], unread)
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
            self._handle_chunk(uidvalidity, uids, readings)
            readings = {}  # not to hold this chunk's mail while the next is fetched
        if self.stop.is_set():
            result.interrupted = True

    def _handle_chunk(self, uidvalidity: int, uids: list[int],
                      readings: dict[int, Reading]) -> None:
        # A mail without a reading was expunged by someone else after the SEARCH.
        todo = [uid for uid in uids if uid in readings]
        result = self.result

        def decide_all(isolate: bool) -> list[tuple[int, Handled]]:
            done: list[tuple[int, Handled]] = []
            # IMMEDIATE: the rules read what they decide on (the same mail, open tickets) under
            # the write lock, so that a mailbox sharing the database waits instead of deciding
            # the same alert at the same time.
            with self.store.db.atomic(lock_type="IMMEDIATE"):
                self.store.check_fence()
                self.recorder.begin()
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
                        self.recorder.finish()
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
                (flags if step.kind is StepKind.FLAG else self.moves).append(
                    Due(item.row.id(), uid, step))
        self.steps.carry_out(flags)
        if len(self.moves) >= UID_BATCH:
            self.steps.carry_out(self.moves)
            self.moves = []

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
        row, ticket, decision = self.recorder.record(
            key, decision, reading.alert if with_alert else None, now, subject, wait)
        return Handled(row, key, decision, ticket)


def _refused(fetcher: Fetcher, uids: list[int]) -> dict[int, Reading]:
    """Return the readings of the UIDS the server refused to hand over (taken from FETCHER)."""
    return {uid: refused_by_server(fetcher.refused.pop(uid)) for uid in uids
            if uid in fetcher.refused}
