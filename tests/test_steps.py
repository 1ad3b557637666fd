"""Mailbox steps on their own (poller.service.steps): carried out in batches, refusals found by
halving, steps left by an earlier pass finished and planned again from today's settings. The
mailbox is the in-memory one, the store a recorder of what the log would get."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from poller.ates.outcomes import FLAG, Purpose, Step, StepKind
from poller.ates.policy import MailboxSettings
from poller.batches import refused_items
from poller.service.steps import Due, MailboxSteps
from poller.store.store import PendingStep
from testkit.fake_mailbox import UIDVALIDITY, FakeMailbox

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
FLAG_ALL = MailboxSettings()
MOVE = MailboxSettings(on_success="move", processed_folder="Done")


@dataclass
class LogRows:
    """The processed-mail log as the steps see it."""

    waiting: list[PendingStep] = field(default_factory=list)
    done: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)
    replanned: dict[int, str] = field(default_factory=dict)

    def pending(self, mailbox: str, folder: str) -> list[PendingStep]:
        return self.waiting

    def mark_done(self, row_ids: list[int], now: datetime) -> None:
        self.done.extend(row_ids)

    def refuse(self, refusals: list[tuple[int, str]], now: datetime) -> None:
        self.refused.update(refusals)

    def replan(self, steps: list[tuple[int, str]], now: datetime) -> None:
        self.replanned.update(steps)


@dataclass
class Tally:
    pending: int = 0
    failing: int = 0


def steps(box: FakeMailbox, rows: LogRows, settings: MailboxSettings = FLAG_ALL
          ) -> tuple[MailboxSteps, Tally]:
    tally = Tally()
    return MailboxSteps(box, rows, settings, lambda: NOW, tally), tally  # type: ignore[arg-type]


def test_one_mail_whose_move_is_refused_is_found_and_the_others_are_moved():
    box = FakeMailbox()
    uids = box.add(*[b"mail"] * 8)
    box.refuse_move = {uids[5]}
    rows = LogRows()
    carrying, tally = steps(box, rows)
    carrying.carry_out([Due(100 + uid, uid, Step(StepKind.MOVE, "Done")) for uid in uids])
    assert sorted(box.moved) == [uid for uid in uids if uid != uids[5]]
    assert list(rows.refused) == [100 + uids[5]]
    assert "SERVERBUG" in rows.refused[100 + uids[5]]
    assert sorted(rows.done) == [100 + uid for uid in uids if uid != uids[5]]
    assert (tally.pending, tally.failing) == (1, 0)


def test_a_refusal_every_mail_shares_costs_two_more_tries_not_one_per_mail():
    box = FakeMailbox()
    uids = box.add(*[b"mail"] * 64)
    box.refuse_steps = True  # a full quota: every STORE answers NO
    tries: list[int] = []
    flag = box.flag

    def counting_flag(part: list[int], keyword: str) -> None:
        tries.append(len(part))
        flag(part, keyword)

    box.flag = counting_flag  # type: ignore[method-assign]
    rows = LogRows()
    carrying, tally = steps(box, rows)
    carrying.carry_out([Due(uid, uid, FLAG, refused_before=uid > 60) for uid in uids])
    assert tries == [64, 32, 32]
    assert len(rows.refused) == 64 and not rows.done
    assert (tally.pending, tally.failing) == (60, 4)


def test_steps_left_by_an_earlier_pass_are_planned_again_from_the_settings_of_the_day():
    box = FakeMailbox()
    kept, gone, flagged = box.add(b"a", b"b", b"c")
    del box.mails[gone]  # moved or deleted by a person since
    rows = LogRows(waiting=[
        PendingStep(1, UIDVALIDITY, kept, "move:Old name", Purpose.DONE.value, ""),
        PendingStep(2, UIDVALIDITY, gone, "flag", Purpose.DONE.value, ""),
        PendingStep(3, UIDVALIDITY + 1, flagged, "flag", Purpose.DONE.value, ""),  # recreated
    ])
    carrying, tally = steps(box, rows, MOVE)
    carrying.finish_pending("box", "INBOX", UIDVALIDITY, {kept})
    assert box.moved == {kept: "Done"}
    assert rows.replanned == {1: "move:Done"}
    assert sorted(rows.done) == [1, 2, 3]
    assert (tally.pending, tally.failing) == (0, 0)


def test_a_step_refused_before_as_planned_counts_as_failing_when_refused_again():
    box = FakeMailbox()
    (uid,) = box.add(b"a")
    box.refuse_move = {uid}
    rows = LogRows(waiting=[PendingStep(1, UIDVALIDITY, uid, "move:Done", "done", "NO")])
    carrying, tally = steps(box, rows, MOVE)
    carrying.finish_pending("box", "INBOX", UIDVALIDITY, {uid})
    assert (tally.pending, tally.failing) == (0, 1)


def test_halving_finds_each_refused_item_with_its_own_refusal():
    refused = {3: "NO three", 9: "NO nine"}

    def attempt(part: list[int]) -> str:
        return next((refused[item] for item in part if item in refused), "")

    assert refused_items(list(range(12)), attempt) == [(3, "NO three"), (9, "NO nine")]
    assert refused_items([1, 2], attempt) == []
