"""One pass over the mailbox: fetch new mail, decide, commit, then flag or move.

Order of effects, per chunk of mail: (1) the decisions and the log rows are committed in one
transaction, (2) the mailbox step runs (flags at once; moves wait for a batch of MOVE_BATCH or
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

import peewee

from poller.alert import Alert
from poller.batches import chunks
from poller.config import Settings
from poller.errors import MailboxError, MailboxUnavailable
from poller.mailbox import Mailbox
from poller.reader import Reader, Reading, read
from poller.rules import Decision, Outcome, Policy, decide
from poller.store import Store
from poller.tickets import AttachmentPolicy, MessageKey, record

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# UIDs per flag or move command (a command line stays far below servers' limits), and the
# number of moves that wait for each other.
MOVE_BATCH = 1000


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
    action: str
    ticket: str | None
    subject: str


class Worker:
    """Runs passes with one settings object against one mailbox connection and one store."""

    def __init__(self, settings: Settings, mailbox: Mailbox, store: Store,
                 clock: Clock = utc_now, stop: threading.Event | None = None):
        self.settings = settings
        self.mailbox = mailbox
        self.store = store
        self.clock = clock
        self.stop = stop or threading.Event()
        self._moves: list[tuple[int, int, str]] = []
        self.policy = Policy(settings.ates, settings.duplicates)
        directory = settings.database.attachments_dir
        self.attachments = AttachmentPolicy(
            max_bytes=settings.limits.max_attachment_bytes,
            directory=Path(directory) if directory else None,
        )

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
            self._apply_actions(self._moves, result)
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
                uid, item.key.message_id, item.decision.outcome.value, item.ticket or "-",
                item.decision.reason,
                extra={"mail": {"uid": uid, "message_id": item.key.message_id,
                                "outcome": item.decision.outcome.value, "ticket": item.ticket,
                                "reason": item.decision.reason}},
            )
        actions = [(item.row_id, uid, item.action) for uid, item in handled if item.action != "none"]
        # A MOVE makes Dovecot rewrite the folder's index, at a cost that grows with the folder,
        # so moves wait for a batch (or the end of the pass); their log rows say they are due.
        self._moves.extend(a for a in actions if a[2] != "flag")
        self._apply_actions([a for a in actions if a[2] == "flag"], result)
        if len(self._moves) >= MOVE_BATCH:
            self._apply_actions(self._moves, result)
            self._moves = []

    def _handle_one(self, folder: str, uidvalidity: int, uid: int, raw: bytes | None,
                    size: int, reading: Reading | None, isolate: bool) -> Handled:
        """Decide on one mail and record it; with isolate, in a savepoint, and a failure
        quarantines just this mail (without, the failure is raised)."""
        now = self.clock()
        if raw is None:
            decision = Decision(Outcome.QUARANTINED, reason=(
                f"mail is {size} bytes, over the limit of "
                f"{self.settings.limits.max_message_bytes} bytes"))
            key = MessageKey(folder, uidvalidity, uid, None, f"size:{folder}:{uidvalidity}:{uid}")
            return self._record(key, decision, None, self._action(decision, False), now, "")
        reading = reading or read(uid, raw, now)
        message, alert = reading.message, reading.alert
        decision, no_token = reading.failure, reading.no_token
        key = MessageKey(folder, uidvalidity, uid, message.message_id if message else None,
                         reading.fingerprint)
        subject = message.subject if message else ""
        try:
            with self.store.db.atomic() if isolate else nullcontext():
                if decision is None:
                    decision = self._decide(alert, key)
                return self._record(key, decision, alert, self._action(decision, no_token), now,
                                    subject)
        except peewee.OperationalError:
            raise  # the database itself is failing (locked, disk full): no point going on
        except Exception as exc:  # noqa: BLE001 - one mail must never stop the pass
            if not isolate:
                raise
            self.store.forget_cached_udfs()
            logger.exception("uid=%s could not be recorded", uid)
            decision = Decision(Outcome.QUARANTINED,
                                reason=f"internal error: {type(exc).__name__}: {exc}")
            return self._record(key, decision, None, self._action(decision, False), now, subject)

    def _decide(self, alert: Alert, key: MessageKey) -> Decision:
        earlier = self.store.delivered_before(key.fingerprint)
        if earlier is not None:
            return Decision(Outcome.DUPLICATE, reason="the same mail was already processed",
                            ticket_id=earlier.ticket_id)
        return decide(alert, self.store, self.policy)

    def _record(self, key: MessageKey, decision: Decision, alert: Alert | None, action: str,
                now: datetime, subject: str) -> Handled:
        row_id, ticket = record(self.store, key, decision, alert, action, now, self.attachments,
                                subject=subject)
        return Handled(row_id, key, decision, action, ticket, subject)

    def _action(self, decision: Decision, no_token: bool) -> str:
        mbox = self.settings.mailbox
        if decision.outcome is Outcome.QUARANTINED:
            return f"move:{mbox.quarantine_folder}"
        if no_token:
            return "none" if mbox.on_no_token == "leave" else f"move:{mbox.no_token_folder}"
        return "flag" if mbox.on_success == "flag" else f"move:{mbox.processed_folder}"

    def _finish_pending(self, folder: str, uidvalidity: int, waiting: set[int],
                        result: PassResult) -> None:
        """Repeat mailbox steps an earlier pass committed but did not get to do."""
        todo, gone = [], []
        for row_id, row_uidvalidity, uid, action in self.store.pending(folder):
            if row_uidvalidity == uidvalidity and uid in waiting:
                todo.append((row_id, uid, action))
            else:
                gone.append(row_id)  # already moved or flagged, or the folder was recreated
        if gone:
            self.store.mark_done(gone, self.clock())
        if todo:
            logger.info("finishing the mailbox step of %d mail from an earlier pass", len(todo))
            self._apply_actions(todo, result)

    def _apply_actions(self, items: list[tuple[int, int, str]], result: PassResult) -> None:
        """Flag or move UIDs grouped by action, then mark their log rows done."""
        groups: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for row_id, uid, action in items:
            groups[action].append((row_id, uid))
        batches = [(action, batch) for action, rows in groups.items()
                   for batch in chunks(rows, MOVE_BATCH)]
        for action, rows in batches:
            uids = [uid for _, uid in rows]
            try:
                if action == "flag":
                    self.mailbox.flag(uids, self.settings.mailbox.keyword)
                elif action.startswith("move:"):
                    self.mailbox.move(uids, action[len("move:"):])
            except MailboxUnavailable:
                raise
            except MailboxError as exc:
                result.pending += len(uids)
                logger.error("mailbox step %r failed for %d mail, retried next pass: %s",
                             action, len(uids), exc)
                continue
            self.store.mark_done([row_id for row_id, _ in rows], self.clock())

