"""What the server refuses costs only the mail it refuses, over an in-memory mailbox: a FETCH
answered NO or that loses the connection, a MOVE answered NO, a folder refused, and mailbox
steps left over from earlier passes. What Dovecot makes of the same is in
test_refusals_imap.py."""

from __future__ import annotations

from poller.errors import MailboxUnavailable
from poller.service.pass_result import PassResult
from poller.service.passes import opened_store
from poller.store import queries
from testkit.harness import Harness
from testkit.support import alert_mail, token


def alerts(box: Harness, count: int) -> list[int]:
    return box.mailbox.add(*(alert_mail(subject=f"Alert {n}", tok=token(AlertID=f"Kaseya:{n}"))
                             for n in range(count)))


def totals(box: Harness) -> queries.Totals:
    with opened_store(box.settings) as store:
        return queries.totals(store.db, box.settings.imap.name)


def test_a_fetch_answered_no_costs_only_the_mail_the_server_refuses(box):
    uids = alerts(box, 6)
    box.mailbox.refuse_fetch = {uids[3]}
    assert box.run().counts == {"created": 5, "quarantined": 1}
    (row,) = [m for m in box.messages() if m["outcome"] == "quarantined"]
    assert row["uid"] == uids[3]
    assert row["reason"] == ("the server refused to return it: fetching mail: fetch failed: "
                             "[SERVERBUG] Internal error")
    assert [box.mailbox.where(uid) for uid in uids] == ["flagged"] * 3 + ["Quarantine"] + [
        "flagged"] * 2
    assert box.mailbox.fetched[0] == uids  # the chunk first, then halves down to the one mail
    assert [uids[3]] in box.mailbox.fetched


def test_a_mail_whose_fetch_loses_the_connection_every_time_is_quarantined(box):
    """As Dovecot does with a message file it cannot read: every FETCH of it ends the session.
    The pass reconnects (passes.run_pass; here by hand), fetches that chunk one mail at a
    time, and quarantines the mail whose FETCH alone lost the connection twice."""
    uids = alerts(box, 4)
    box.mailbox.lose_fetch = {uids[2]}
    result, attempts = PassResult(), 0
    while True:
        attempts += 1
        try:
            box.run(result)
            break
        except MailboxUnavailable:
            assert attempts < 5
    assert attempts == 4 and result.counts == {"created": 3, "quarantined": 1}
    (row,) = [m for m in box.messages() if m["outcome"] == "quarantined"]
    assert row["uid"] == uids[2] and row["reason"].startswith(
        "the server refused to return it: the connection was lost each of the 2 times it was "
        "fetched alone (last: fetching mail: the server closed the connection")
    assert [box.mailbox.where(uid) for uid in uids] == ["flagged", "flagged", "Quarantine",
                                                        "flagged"]


def test_a_refused_move_fails_one_pass_then_is_recorded_and_tried_quietly(box):
    good, bad = box.mailbox.add(alert_mail(), alert_mail(tok=token(pw="wrong")))
    box.mailbox.refuse_move = {bad}
    first = box.run()
    assert (first.pending, first.failing) == (1, 0)  # `once` exits 1
    assert totals(box).failing_steps == 1
    assert "MOVE failed" in totals(box).step_error
    for _ in range(2):
        later = box.run()
        assert (later.pending, later.failing) == (0, 1)  # `once` exits 0; status shows it
    assert box.mailbox.where(bad) == "untouched" and box.mailbox.where(good) == "flagged"
    box.mailbox.refuse_move = set()
    assert box.run().failing == 0
    assert box.mailbox.where(bad) == "Quarantine"
    assert (totals(box).pending_steps, totals(box).failing_steps) == (0, 0)
    assert box.outcomes() == ["created", "quarantined"]


def test_a_move_refused_for_one_mail_of_a_batch_moves_the_others(box):
    box.configure(mailbox={"on_success": "move", "processed_folder": "Done"})
    uids = alerts(box, 8)
    box.mailbox.refuse_move = {uids[5]}
    assert box.run().pending == 1
    assert [box.mailbox.where(uid) for uid in uids] == ["Done"] * 5 + ["untouched"] + [
        "Done"] * 2
    assert totals(box).failing_steps == 1


def test_a_step_to_a_refused_folder_is_planned_again_once_the_setting_is_fixed(box):
    """As on Cyrus or Courier, where the folders need the INBOX. prefix: every move to
    'ATES/Processed' is refused until the setting is fixed; then the steps go to the new
    folder at the next pass, and nothing is left failing."""
    box.configure(mailbox={"on_success": "move", "processed_folder": "ATES/Processed"})
    box.mailbox.refuse_folders = {"ATES/Processed"}
    uids = alerts(box, 3)
    assert box.run().pending == 3
    assert (box.run().pending, box.run().failing) == (0, 3)
    assert totals(box).failing_steps == 3
    box.configure(mailbox={"on_success": "move", "processed_folder": "INBOX.Processed"})
    result = box.run()
    assert (result.pending, result.failing) == (0, 0)
    assert [box.mailbox.where(uid) for uid in uids] == ["INBOX.Processed"] * 3
    assert (totals(box).pending_steps, totals(box).failing_steps) == (0, 0)
    assert box.outcomes() == ["created"] * 3


def test_a_pending_step_follows_changed_settings(box):
    (uid,) = alerts(box, 1)
    box.mailbox.refuse_steps = True
    assert box.run().pending == 1  # the flag was refused
    box.mailbox.refuse_steps = False
    box.configure(mailbox={"on_success": "move", "processed_folder": "Done"})
    box.run()
    assert box.mailbox.where(uid) == "Done"


def test_a_pending_quarantine_move_of_mail_someone_read_is_still_carried_out(box):
    """A person read the mail between the decision and its move: it no longer matches
    UNSEEN, but it is still in the folder, so the move happens."""
    (uid,) = box.mailbox.add(alert_mail(tok=token(pw="wrong")))
    box.mailbox.refuse_steps = True
    assert box.run().pending == 1
    box.mailbox.refuse_steps = False
    box.mailbox.flags[uid] = {"\\Seen"}
    assert box.run().pending == 0
    assert box.mailbox.where(uid) == "Quarantine"
    assert totals(box).pending_steps == 0


def test_a_pending_step_of_mail_that_is_gone_is_marked_done(box):
    (uid,) = box.mailbox.add(alert_mail(tok=token(pw="wrong")))
    box.mailbox.refuse_steps = True
    box.run()
    box.mailbox.refuse_steps = False
    del box.mailbox.mails[uid]  # moved or deleted by someone else
    assert box.run().pending == 0
    assert totals(box).pending_steps == 0
