"""One pass over the mailbox: fetch new mail, decide, commit, then flag or move.

The worker only carries decisions out: what each mail gets is poller.ates's to say. Order of
effects, per chunk of mail: (1) the decisions and the log rows are committed in one
transaction, (2) the mailbox step runs (flags at once; moves wait for a batch of UID_BATCH or
the end of the pass), (3) the log rows are marked done. A crash between any two steps is
repaired by the next pass: a mail with a log row is never decided again, and a row whose
mailbox step is not done has that step repeated, planned from the settings of the day.

Memory is bounded by bytes: the sizes of the new mail are fetched first, and chunks are cut at
half of [limits] max_fetch_bytes, so that the chunk in hand and the one read ahead fit in it.
Mail is read in a helper process (poller.service.reader), each within [limits]
max_read_seconds. Mail the server will not hand over is quarantined (poller.service.fetching).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import peewee

from poller.ates.decision import Decision, Outcome, Purpose, Step
from poller.ates.reading import Reading
from poller.ates.rules import decide, oversized, plan, quarantined, refused
from poller.batches import UID_BATCH, chunks, sized_chunks
from poller.clock import Clock, utc_now
from poller.config import Settings
from poller.errors import MailboxError, MailboxUnavailable
from poller.mail.headers import printable
from poller.service.fetching import Fetcher
from poller.service.reader import Reader
from poller.store.record import MessageKey, record
from poller.store.store import PendingStep, Store

logger = logging.getLogger(__name__)

class MailboxPort(Protocol):
    """What a pass needs of the mailbox: poller.imap.mailbox.Mailbox, or a fake in tests."""

    def select(self, folder: str, readonly: bool = False) -> int: ...
    def search(self, criteria: str) -> list[int]: ...
    def existing(self, uids: list[int]) -> set[int]: ...
    def ensure_folder(self, folder: str) -> None: ...
    def sizes(self, uids: list[int]) -> dict[int, int]: ...
    def fetch(self, uids: list[int]) -> dict[int, bytes]: ...
    def flag(self, uids: list[int], keyword: str) -> None: ...
    def move(self, uids: list[int], folder: str) -> None: ...


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
    row_id: int
    key: MessageKey
    decision: Decision
    ticket: str | None


@dataclass(frozen=True)
class Due:
    """A mailbox step to carry out: its log row, the UID, the step, and whether the server
    refused it before."""

    row_id: int
    uid: int
    step: Step
    refused_before: bool = False


class Worker:
    """Runs passes with one settings object against one mailbox connection and one store.

    reader: the helper that reads mail, when the caller keeps one across passes (`serve`);
    without, each pass with new mail starts its own.
    """

    def __init__(self, settings: Settings, mailbox: MailboxPort, store: Store,
                 clock: Clock = utc_now, stop: threading.Event | None = None,
                 reader: Reader | None = None):
        self.settings = settings
        self.mailbox = mailbox
        self.store = store
        self.clock = clock
        self.stop = stop or threading.Event()
        self.reader = reader
        self._moves: list[Due] = []
        self.policy = settings.policy()
        self.subscribed = settings.webhook.subscribed()
        self.name = settings.imap.name
        directory = settings.database.attachments_dir
        self.attachments_dir = Path(directory) if directory else None

    def run_pass(self, result: PassResult | None = None) -> PassResult:
        """Handle every new mail in the folder; raise MailboxError if the server goes away.

        Counts are added to RESULT when given (a pass resumed after reconnecting). When the
        stop event is set, the pass ends after the mail in hand, its chunk committed and
        flagged or moved; the rest is left for the next pass.
        """
        started = time.monotonic()
        result = result if result is not None else PassResult()
        folder = self.settings.imap.folder
        uidvalidity = self.mailbox.select(folder)
        uids = self.mailbox.search(self.settings.imap.search)
        self._create_folders()
        self._finish_pending(folder, uidvalidity, set(uids), result)
        decided = self.store.decided(self.name, folder, uidvalidity, uids)
        new = [uid for uid in uids if uid not in decided]
        self._moves = []
        if new:
            with self._reading() as reader:
                reader.start()  # it starts while the sizes and the first chunk are fetched
                self._handle_new(folder, uidvalidity, new, reader, result)
            self._apply_steps(self._moves, result)
        result.seconds = time.monotonic() - started
        return result

    def _create_folders(self) -> None:
        """Create the folders mail may be moved to, so that a folder the server refuses shows
        at the start of every pass (the steps that need it are left for the next pass)."""
        for folder in self.settings.target_folders():
            try:
                self.mailbox.ensure_folder(folder)
            except MailboxUnavailable:
                raise
            except MailboxError as exc:
                logger.error("%s", exc)

    @contextmanager
    def _reading(self) -> Iterator[Reader]:
        if self.reader is None:
            with Reader() as reader:
                yield reader
        else:
            try:
                yield self.reader
            finally:
                self.reader.settle()

    def _handle_new(self, folder: str, uidvalidity: int, new: list[int], reader: Reader,
                    result: PassResult) -> None:
        limits = self.settings.limits
        fetcher = Fetcher(self.mailbox, result.lost)
        sizes = fetcher.sizes(new)
        early = {uid: oversized(size, self.policy) for uid, size in sizes.items()
                 if size > limits.max_message_bytes}
        early.update((uid, refused(fetcher.refused.pop(uid), self.policy)) for uid in new
                     if uid in fetcher.refused)
        if early:
            self._handle_chunk(folder, uidvalidity, [uid for uid in new if uid in early], {},
                               early, result)
        fitting = [uid for uid in new if uid in sizes and uid not in early]
        cut = sized_chunks(fitting, sizes, self.settings.imap.fetch_chunk,
                           limits.max_fetch_bytes // 2)
        for uids, readings in reader.chunks(cut, sizes, fetcher.fetch, self.clock,
                                            budget=limits.max_fetch_bytes,
                                            seconds=limits.max_read_seconds, stop=self.stop):
            # a chunk read ahead but not handled is simply left for the next pass
            if self.stop.is_set():
                break
            unread = {uid: refused(fetcher.refused.pop(uid), self.policy) for uid in uids
                      if uid in fetcher.refused}
            self._handle_chunk(folder, uidvalidity, uids, readings, unread, result)
            readings = unread = {}  # not to hold this chunk's mail while the next is fetched
        if self.stop.is_set():
            result.interrupted = True

    def _handle_chunk(self, folder: str, uidvalidity: int, uids: list[int],
                      readings: dict[int, Reading], unread: dict[int, Decision],
                      result: PassResult) -> None:
        # A mail neither read nor decided unread was expunged by someone else after the SEARCH.
        todo = [uid for uid in uids if uid in readings or uid in unread]

        def decide_all(isolate: bool) -> list[tuple[int, Handled]]:
            done: list[tuple[int, Handled]] = []
            # IMMEDIATE: the rules read what they decide on (the same mail, open tickets) under
            # the write lock, so that a mailbox sharing the database waits instead of deciding
            # the same alert at the same time.
            with self.store.db.atomic(lock_type="IMMEDIATE"):
                for uid in todo:
                    if self.stop.is_set():
                        result.interrupted = True
                        break
                    done.append((uid, self._handle_one(folder, uidvalidity, uid,
                                                       readings.get(uid), unread.get(uid),
                                                       isolate)))
            return done

        try:
            handled = decide_all(isolate=False)
        except peewee.OperationalError:
            raise  # the database itself is failing (locked, disk full): no point going on
        except Exception:  # noqa: BLE001 - redone mail by mail
            # A savepoint per mail costs a quarter of the worker's time, so the chunk is first
            # tried without; when one mail fails, the whole try is rolled back and the chunk is
            # redone with savepoints, which quarantine just the failing mail.
            self.store.forget_cached_udfs()
            handled = decide_all(isolate=True)
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
        steps = [Due(item.row_id, uid, item.decision.step) for uid, item in handled
                 if item.decision.step.kind != "none"]
        # A MOVE makes Dovecot rewrite the folder's index, at a cost that grows with the folder,
        # so moves wait for a batch (or the end of the pass); their log rows say they are due.
        self._moves.extend(s for s in steps if s.step.kind == "move")
        self._apply_steps([s for s in steps if s.step.kind == "flag"], result)
        if len(self._moves) >= UID_BATCH:
            self._apply_steps(self._moves, result)
            self._moves = []

    def _handle_one(self, folder: str, uidvalidity: int, uid: int, reading: Reading | None,
                    unread: Decision | None, isolate: bool) -> Handled:
        """Decide on one mail and record it; with isolate, in a savepoint, and a failure
        quarantines just this mail (without, the failure is raised). A mail that was not read
        (too large, refused by the server) comes with its decision."""
        now = self.clock()
        if reading is None:
            assert unread is not None
            key = MessageKey(self.name, folder, uidvalidity, uid, None,
                             f"unread:{self.name}:{folder}:{uidvalidity}:{uid}")
            return self._record(key, unread, None, now)
        message = reading.message
        # a mail that cannot be told from a new one by its fingerprint is its own, by UID
        key = MessageKey(self.name, folder, uidvalidity, uid,
                         message.message_id if message else None,
                         reading.fingerprint or f"uid:{self.name}:{folder}:{uidvalidity}:{uid}")
        try:
            with self.store.db.atomic() if isolate else nullcontext():
                return self._record(key, decide(reading, self.store, self.policy), reading, now)
        except peewee.OperationalError:
            raise  # the database itself is failing (locked, disk full): no point going on
        except Exception as exc:  # noqa: BLE001 - one mail must never stop the pass
            if not isolate:
                raise
            self.store.forget_cached_udfs()
            logger.exception("uid=%s could not be recorded", uid)
            decision = quarantined(f"internal error: {type(exc).__name__}: {exc}", self.policy)
            return self._record(key, decision, reading, now, with_alert=False)

    def _record(self, key: MessageKey, decision: Decision, reading: Reading | None,
                now: datetime, with_alert: bool = True) -> Handled:
        alert = reading.alert if reading is not None and with_alert else None
        subject = reading.message.subject if reading is not None and reading.message else ""
        row_id, ticket = record(self.store, key, decision, alert, now, self.attachments_dir,
                                subject=subject, subscribed=self.subscribed)
        return Handled(row_id, key, decision, ticket)

    def _finish_pending(self, folder: str, uidvalidity: int, waiting: set[int],
                        result: PassResult) -> None:
        """Carry out the mailbox steps earlier passes committed but did not get done, planned
        again from the current settings (a folder name fixed since applies)."""
        pending = self.store.pending(self.name, folder)
        if not pending:
            return
        current = [row for row in pending if row.uidvalidity == uidvalidity]
        # A mail a person has read since no longer matches the search, but is still there.
        unseen = [row.uid for row in current if row.uid not in waiting]
        present = waiting | (self.mailbox.existing(unseen) if unseen else set())
        done = [row.row_id for row in pending
                if row.uidvalidity != uidvalidity or row.uid not in present]
        due, replanned = [], []
        for row in current:
            if row.uid not in present:
                continue  # already moved, or gone; a folder recreated has another uidvalidity
            step = plan(Purpose(row.purpose), self.policy.mailbox)
            if str(step) != row.action:
                replanned.append((row.row_id, str(step)))
            if step.kind == "none":
                done.append(row.row_id)
            else:
                due.append(Due(row.row_id, row.uid, step, _refused_as_planned(row, step)))
        if replanned:
            logger.info("%d mailbox steps planned again from the current settings",
                        len(replanned))
            self.store.replan(replanned, self.clock())
        if done:
            self.store.mark_done(done, self.clock())
        if due:
            logger.info("finishing the mailbox step of %d mail from an earlier pass", len(due))
            self._apply_steps(due, result)

    def _apply_steps(self, items: list[Due], result: PassResult) -> None:
        """Flag or move UIDs grouped by step, then mark their log rows done; record the steps
        the server refuses."""
        groups: dict[Step, list[Due]] = defaultdict(list)
        for item in items:
            groups[item.step].append(item)
        for step, rows in groups.items():
            for batch in chunks(rows, UID_BATCH):
                error = self._try_step(step, batch)
                if error:
                    self._refused_steps(step, self._split_step(step, batch, error, False), result)

    def _try_step(self, step: Step, rows: list[Due]) -> str:
        """Carry out one step for the rows' UIDs; return '' when done, else the server's no."""
        uids = [row.uid for row in rows]
        try:
            if step.kind == "flag":
                self.mailbox.flag(uids, self.settings.mailbox.keyword)
            elif step.kind == "move":
                self.mailbox.move(uids, step.folder)
        except MailboxUnavailable:
            raise
        except MailboxError as exc:
            return str(exc)
        self.store.mark_done([row.row_id for row in rows], self.clock())
        return ""

    def _split_step(self, step: Step, rows: list[Due], error: str,
                    one_mail: bool) -> list[tuple[Due, str]]:
        """Find the rows whose step the server refuses by trying halves; return them with its
        reason. When both halves of the first split are refused too, the refusal is the step's
        (a folder, a quota), and every row gets it without more tries."""
        if len(rows) == 1:
            return [(rows[0], error)]
        halves = (rows[:len(rows) // 2], rows[len(rows) // 2:])
        errors = [self._try_step(step, half) for half in halves]
        if not one_mail and all(errors):
            return [(row, error) for row in rows]
        return [found for half, why in zip(halves, errors, strict=True) if why
                for found in self._split_step(step, half, why, True)]

    def _refused_steps(self, step: Step, refusals: list[tuple[Due, str]],
                       result: PassResult) -> None:
        """Record refused steps. A refusal is an error the first time (the pass exits 1); a step
        refused again as it was planned counts as failing, which `poller status` shows."""
        self.store.refuse([(row.row_id, why) for row, why in refusals], self.clock())
        again = [row for row, _ in refusals if row.refused_before]
        first = [(row, why) for row, why in refusals if not row.refused_before]
        result.failing += len(again)
        result.pending += len(first)
        if again:
            logger.info("mailbox step %r refused again for %d mail (uid=%s); `poller status` "
                        "lists it", str(step), len(again), _uids(again))
        for why in dict.fromkeys(why for _, why in first):
            rows = [row for row, reason in first if reason == why]
            logger.error("mailbox step %r refused for %d mail (uid=%s), tried again next pass: %s",
                         str(step), len(rows), _uids(rows), why)


def _refused_as_planned(row: PendingStep, step: Step) -> bool:
    """True when the server refused this very step before (not one planned differently)."""
    return bool(row.error) and str(step) == row.action


def _uids(rows: list[Due]) -> str:
    shown = ",".join(str(row.uid) for row in rows[:10])
    return shown + (",…" if len(rows) > 10 else "")
