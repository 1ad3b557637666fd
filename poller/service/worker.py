"""One pass over the mailbox: fetch new mail, decide, commit, then flag or move.

The worker only carries decisions out: what each mail gets is poller.ates's to say. Order of
effects, per chunk of mail: (1) the decisions and the log rows are committed in one
transaction, (2) the mailbox step runs (flags at once; moves wait for a batch of UID_BATCH or
the end of the pass), (3) the log rows are marked done. A crash between any two steps is
repaired by the next pass: a mail with a log row is never decided again, and a row whose
mailbox step is not done has that step repeated.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import peewee

from poller.ates.decision import Decision, Outcome, Step
from poller.ates.reading import Reading, read
from poller.ates.rules import decide, oversized, quarantined
from poller.batches import UID_BATCH, chunks
from poller.config import Settings
from poller.errors import MailboxError, MailboxUnavailable
from poller.mail.headers import printable
from poller.service.reader import Reader
from poller.store.record import MessageKey, record
from poller.store.store import Store

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class MailboxPort(Protocol):
    """What a pass needs of the mailbox: poller.imap.mailbox.Mailbox, or a fake in tests."""

    def select(self, folder: str, readonly: bool = False) -> int: ...
    def search(self, criteria: str) -> list[int]: ...
    def sizes(self, uids: list[int]) -> dict[int, int]: ...
    def fetch(self, uids: list[int]) -> dict[int, bytes]: ...
    def flag(self, uids: list[int], keyword: str) -> None: ...
    def move(self, uids: list[int], folder: str) -> None: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class PassResult:
    """What one pass did: counts by outcome, mailbox steps left for the next pass, timing.

    interrupted is True when a stop request ended the pass before every mail was looked at.
    """

    counts: Counter[str] = field(default_factory=Counter)
    pending: int = 0
    seconds: float = 0.0
    interrupted: bool = False

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


class Worker:
    """Runs passes with one settings object against one mailbox connection and one store."""

    def __init__(self, settings: Settings, mailbox: MailboxPort, store: Store,
                 clock: Clock = utc_now, stop: threading.Event | None = None):
        self.settings = settings
        self.mailbox = mailbox
        self.store = store
        self.clock = clock
        self.stop = stop or threading.Event()
        self._moves: list[tuple[int, int, Step]] = []
        self.policy = settings.policy()
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
        self._finish_pending(folder, uidvalidity, set(uids), result)
        decided = self.store.decided(folder, uidvalidity, uids)
        new = [uid for uid in uids if uid not in decided]
        self._moves = []
        if new:
            limit = self.settings.limits.max_message_bytes
            # One SEARCH instead of fetching every size: only the oversized need theirs.
            over = set(self.mailbox.search(f"({self.settings.imap.search}) LARGER {limit}"))
            too_large = [uid for uid in new if uid in over]
            fitting = [uid for uid in new if uid not in over]
            sizes = self.mailbox.sizes(too_large) if too_large else {}
            if too_large:
                self._handle_chunk(folder, uidvalidity, too_large, {}, sizes, result)
            size = self.settings.imap.fetch_chunk
            with Reader(helper=len(fitting) > size) as reader:
                for chunk, raws, readings in reader.chunks(chunks(fitting, size),
                                                           self.mailbox.fetch, self.clock):
                    # a chunk read ahead but not handled is simply left for the next pass
                    if self.stop.is_set():
                        result.interrupted = True
                        break
                    self._handle_chunk(folder, uidvalidity, chunk, raws, sizes, result, readings)
            self._apply_steps(self._moves, result)
        result.seconds = time.monotonic() - started
        return result

    def _handle_chunk(self, folder: str, uidvalidity: int, uids: list[int],
                      raws: dict[int, bytes], sizes: dict[int, int], result: PassResult,
                      readings: dict[int, Reading] | None = None) -> None:
        limit = self.settings.limits.max_message_bytes
        # A mail neither fetched nor too large was expunged by someone else after the SEARCH.
        todo = [(uid, raws.get(uid)) for uid in uids if uid in raws or sizes.get(uid, 0) > limit]

        def decide_all(isolate: bool) -> list[tuple[int, Handled]]:
            done: list[tuple[int, Handled]] = []
            with self.store.db.atomic():
                for uid, raw in todo:
                    if self.stop.is_set():
                        result.interrupted = True
                        break
                    reading = readings.get(uid) if readings else None
                    done.append((uid, self._handle_one(folder, uidvalidity, uid, raw,
                                                       sizes.get(uid, 0), reading, isolate)))
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
        steps = [(item.row_id, uid, item.decision.step) for uid, item in handled
                 if item.decision.step.kind != "none"]
        # A MOVE makes Dovecot rewrite the folder's index, at a cost that grows with the folder,
        # so moves wait for a batch (or the end of the pass); their log rows say they are due.
        self._moves.extend(s for s in steps if s[2].kind == "move")
        self._apply_steps([s for s in steps if s[2].kind == "flag"], result)
        if len(self._moves) >= UID_BATCH:
            self._apply_steps(self._moves, result)
            self._moves = []

    def _handle_one(self, folder: str, uidvalidity: int, uid: int, raw: bytes | None,
                    size: int, reading: Reading | None, isolate: bool) -> Handled:
        """Decide on one mail and record it; with isolate, in a savepoint, and a failure
        quarantines just this mail (without, the failure is raised)."""
        now = self.clock()
        if raw is None:
            key = MessageKey(folder, uidvalidity, uid, None, f"size:{folder}:{uidvalidity}:{uid}")
            return self._record(key, oversized(size, self.policy), None, now)
        reading = reading or read(uid, raw, now)
        message = reading.message
        # a mail that cannot be told from a new one by its fingerprint is its own, by UID
        key = MessageKey(folder, uidvalidity, uid, message.message_id if message else None,
                         reading.fingerprint or f"uid:{folder}:{uidvalidity}:{uid}")
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
                                subject=subject)
        return Handled(row_id, key, decision, ticket)

    def _finish_pending(self, folder: str, uidvalidity: int, waiting: set[int],
                        result: PassResult) -> None:
        """Repeat mailbox steps an earlier pass committed but did not get to do."""
        todo, gone = [], []
        for row_id, row_uidvalidity, uid, step in self.store.pending(folder):
            if row_uidvalidity == uidvalidity and uid in waiting:
                todo.append((row_id, uid, Step.parse(step)))
            else:
                gone.append(row_id)  # already moved or flagged, or the folder was recreated
        if gone:
            self.store.mark_done(gone, self.clock())
        if todo:
            logger.info("finishing the mailbox step of %d mail from an earlier pass", len(todo))
            self._apply_steps(todo, result)

    def _apply_steps(self, items: list[tuple[int, int, Step]], result: PassResult) -> None:
        """Flag or move UIDs grouped by step, then mark their log rows done."""
        groups: dict[Step, list[tuple[int, int]]] = defaultdict(list)
        for row_id, uid, step in items:
            groups[step].append((row_id, uid))
        batches = [(step, batch) for step, rows in groups.items()
                   for batch in chunks(rows, UID_BATCH)]
        for step, rows in batches:
            uids = [uid for _, uid in rows]
            try:
                if step.kind == "flag":
                    self.mailbox.flag(uids, self.settings.mailbox.keyword)
                elif step.kind == "move":
                    self.mailbox.move(uids, step.folder)
            except MailboxUnavailable:
                raise
            except MailboxError as exc:
                result.pending += len(uids)
                logger.error("mailbox step %r failed for %d mail, retried next pass: %s",
                             str(step), len(uids), exc)
                continue
            self.store.mark_done([row_id for row_id, _ in rows], self.clock())
