"""Mailbox steps: flagging or moving mail once its decision is on disk, and finishing the steps
an earlier pass committed but did not get done.

A step the server refuses is found by halving the batch (poller.batches.refused_items) and
recorded in the processed-mail log with the server's words: the first refusal counts as
pending (the pass exits 1, the step is tried again next pass), a step refused again as it was
planned counts as failing, which `poller status` shows. A step still to be done is planned
again from its purpose with the settings of the day, so a folder name fixed since applies.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

from poller.ates.outcomes import Purpose, Step, StepKind
from poller.ates.policy import MailboxSettings
from poller.batches import UID_BATCH, chunks, refused_items
from poller.clock import Clock
from poller.errors import MailboxError, MailboxUnavailable
from poller.store.store import PendingStep, Store

logger = logging.getLogger(__name__)


class StepsPort(Protocol):
    """What carrying out steps needs of the mailbox."""

    def existing(self, uids: list[int]) -> set[int]: ...
    def flag(self, uids: list[int], keyword: str) -> None: ...
    def move(self, uids: list[int], folder: str) -> None: ...


@dataclass(frozen=True)
class Due:
    """A mailbox step to carry out: its log row, the UID, the step, and whether the server
    refused this very step before."""

    row_id: int
    uid: int
    step: Step
    refused_before: bool = False


class Tally(Protocol):
    """Where refused steps are counted (the pass's result): pending, refused for the first time
    and tried again next pass; failing, refused again as planned."""

    pending: int
    failing: int


class MailboxSteps:
    """Carries out the steps of one mailbox's selected folder and records how they went."""

    def __init__(self, mailbox: StepsPort, store: Store, settings: MailboxSettings,
                 clock: Clock, tally: Tally):
        self.mailbox = mailbox
        self.store = store
        self.settings = settings
        self.clock = clock
        self.tally = tally

    def finish_pending(self, name: str, folder: str, uidvalidity: int,
                       waiting: set[int]) -> None:
        """Carry out the steps earlier passes committed for FOLDER of mailbox NAME but did not
        get done; WAITING is the UIDs the pass's search found."""
        pending = self.store.pending(name, folder)
        if not pending:
            return
        current = [row for row in pending if row.uidvalidity == uidvalidity]
        # A mail a person has read since no longer matches the search, but is still there.
        unseen = [row.uid for row in current if row.uid not in waiting]
        present = waiting | (self.mailbox.existing(unseen) if unseen else set())
        done = [row.row_id for row in pending
                if row.uidvalidity != uidvalidity or row.uid not in present]
        due, replanned = [], []
        from poller.ates.rules import plan  # the rules load when there is a step to plan

        for row in current:
            if row.uid not in present:
                continue  # already moved, or gone; a folder recreated has another uidvalidity
            step = plan(Purpose(row.purpose), self.settings)
            if str(step) != row.action:
                replanned.append((row.row_id, str(step)))
            if step.kind is StepKind.NONE:
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
            self.carry_out(due)

    def carry_out(self, items: list[Due]) -> None:
        """Flag or move the UIDs grouped by step, then mark their log rows done; record the
        steps the server refuses."""
        groups: dict[Step, list[Due]] = defaultdict(list)
        for item in items:
            groups[item.step].append(item)
        for step, rows in groups.items():
            for batch in chunks(rows, UID_BATCH):
                refused = refused_items(batch, lambda part, step=step: self._try(step, part),
                                        shared=True)
                if refused:
                    self._record_refused(step, refused)

    def _try(self, step: Step, rows: list[Due]) -> str:
        """Carry out one step for the rows' UIDs; return '' when done, else the server's no."""
        uids = [row.uid for row in rows]
        try:
            if step.kind is StepKind.FLAG:
                self.mailbox.flag(uids, self.settings.keyword)
            elif step.kind is StepKind.MOVE:
                self.mailbox.move(uids, step.folder)
        except MailboxUnavailable:
            raise
        except MailboxError as exc:
            return str(exc)
        self.store.mark_done([row.row_id for row in rows], self.clock())
        return ""

    def _record_refused(self, step: Step, refusals: list[tuple[Due, str]]) -> None:
        """Record refused steps. A refusal is an error the first time (the pass exits 1); a step
        refused again as it was planned counts as failing."""
        self.store.refuse([(row.row_id, why) for row, why in refusals], self.clock())
        again = [row for row, _ in refusals if row.refused_before]
        first = [(row, why) for row, why in refusals if not row.refused_before]
        self.tally.failing += len(again)
        self.tally.pending += len(first)
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
