"""Webhooks as an operator runs them, against the private Dovecot and a receiver on 127.0.0.1:
`once` and `serve` deliver after their passes and never wait for a receiver, kill -9 loses no
event, `check --webhook-ping`, `status`, the metrics textfile, `outbox`, and no secret shown."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from testkit.serving import Child, count_tickets, query, wait_until
from testkit.support import alert_mail, poller, poller_json, run_subprocess, token, write_settings
from testkit.webhooks import SECRET, HookedBox, webhook_section

SEEN, KEYWORD = b"\\Seen", b"$AtesProcessed"


def settings(tmp_path, account, receiver, **webhook):
    return write_settings(tmp_path, account, webhook=webhook_section(receiver, **webhook))


def all_flagged(account) -> bool:
    return all(SEEN in flags and KEYWORD in flags for _, flags, _ in account.messages("INBOX"))


def test_once_with_a_hanging_receiver_processes_the_mail_and_exits_0(tmp_path, imap_account,
                                                                      receiver, capsys):
    config = settings(tmp_path, imap_account, receiver, timeout="0.5", initial_wait="0.1")
    receiver.hang()
    imap_account.append("INBOX", alert_mail(tok=token(AlertID="Kaseya:1")))
    assert poller(config, "once") == 0
    assert count_tickets(tmp_path / "tickets.db") == 1 and all_flagged(imap_account)
    assert "no answer from" in capsys.readouterr().err
    (event,) = poller_json(config, capsys, "outbox")
    assert (event["status"], event["attempts"]) == ("failed", 1)

    receiver.release()
    due = datetime.fromisoformat(event["next_attempt"])  # after initial_wait, to the second
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
    assert poller(config, "once") == 0
    assert [e["status"] for e in poller_json(config, capsys, "outbox")] == ["delivered"]
    assert [d.id for d in receiver.taken] == [event["id"]]


KILL = """
import os, signal
import {module} as target
original = target.{name}
def crash(*args, **kwargs):
    {before}
    result = original(*args, **kwargs)
    {after}
    return result
target.{name} = crash
"""
DIE = "os.kill(os.getpid(), signal.SIGKILL)"


@pytest.mark.parametrize(("module", "name", "before", "after", "posted", "total"), [
    ("poller.store.outbox", "add_event", "", DIE, 0, 3),  # event written, not committed
    ("poller.service.delivery", "post", DIE, "", 0, 3),    # committed, nothing posted yet
    ("poller.service.delivery", "post", "", DIE, 1, 4),    # taken, not marked delivered
    ("poller.store.outbox", "mark_delivered", "", DIE, 1, 3),  # marked, the rest not posted
], ids=["in-the-pass", "before-post", "after-post", "after-mark"])
def test_kill_9_during_delivery_loses_no_event_and_keeps_its_id(
        tmp_path, imap_account, receiver, capsys, module, name, before, after, posted, total):
    config = settings(tmp_path, imap_account, receiver)
    for n in range(3):
        imap_account.append("INBOX", alert_mail(body=f"n{n}", tok=token(AlertID="Kaseya:1")))
    crashed = run_subprocess(config, "once", prelude=KILL.format(
        module=module, name=name, before=before, after=after))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert len(receiver.taken) == posted
    assert poller(config, "once") == 0
    outbox = poller_json(config, capsys, "outbox")[::-1]  # oldest first
    assert [e["event"] for e in outbox] == ["created", "appended", "appended"]
    assert [e["status"] for e in outbox] == ["delivered"] * 3
    taken = [d.id for d in receiver.taken]
    # at least once, in order, and never under another id: a repeat is the same event
    assert list(dict.fromkeys(taken)) == [e["id"] for e in outbox]
    assert len(taken) == total
    assert all(d.signed for d in receiver.taken)
    assert len({d.raw for d in receiver.taken}) == 3
    assert all_flagged(imap_account)


def test_serve_goes_on_with_mail_while_the_receiver_hangs(tmp_path, imap_account, receiver):
    config = write_settings(tmp_path, imap_account,
                            webhook=webhook_section(receiver, timeout="60",
                                                    initial_wait="0.5"),
                            schedule={"interval": "3600", "idle": "true"})
    db = tmp_path / "tickets.db"
    receiver.hang()
    with Child(config, "serve") as serve:
        serve.wait_for("waiting for new mail in 'INBOX' with IMAP IDLE")
        for n in range(2):
            imap_account.append("INBOX", alert_mail(tok=token(AlertID=f"Kaseya:{n}")))
            # the first event's POST hangs for a minute; IDLE passes go on without it
            wait_until(lambda n=n: count_tickets(db) == n + 1, 20, lambda: serve.log)
        assert receiver.requests == [] or [d.status for d in receiver.requests] == [0]
        receiver.release()
        wait_until(lambda: query(db, "SELECT count(*) FROM outbox WHERE status = 'delivered'")
                   == [(2,)], 20, lambda: serve.log)
        assert serve.stop() == 0
    assert sorted(d.body["ticket"]["udfs"]["Kaseya Alert ID"] for d in receiver.taken) == [
        "0", "1"]


def test_check_pings_the_receiver_and_names_a_failure_with_exit_8(tmp_path, imap_account,
                                                                   receiver, capsys):
    config = settings(tmp_path, imap_account, receiver)
    assert poller(config, "check", "--webhook-ping") == 0
    out = capsys.readouterr().out
    assert "[webhook]" in out and "secret = ********" in out and SECRET not in out
    assert "the receiver answered 200 to a signed ping" in out
    (ping,) = receiver.taken
    assert ping.signed and ping.event == "ping" and ping.body["ticket"] is None

    receiver.answers = [403]
    assert poller(config, "check", "--webhook-ping") == 8
    assert "the ping was not taken" in capsys.readouterr().out
    assert poller(config, "check") == 0, "without --webhook-ping nothing is posted"
    assert len(receiver.requests) == 2

    plain = write_settings(tmp_path, imap_account)
    assert poller(plain, "check", "--webhook-ping") == 2
    assert "no [webhook] url is set" in capsys.readouterr().err


def test_status_and_metrics_show_undelivered_events_and_the_oldest(tmp_path, receiver, capsys):
    textfile = tmp_path / "poller.prom"
    box = HookedBox(tmp_path, receiver, metrics={"textfile": str(textfile)})
    receiver.stop()
    box.mailbox.add(alert_mail(tok=token(AlertID="Kaseya:1")),
                    alert_mail(tok=token(AlertID="Kaseya:2")))
    box.run()
    assert box.deliver().failed == 1
    status = status_json(box.config, capsys)
    assert status["undelivered_events"] == 2 and status["oldest_undelivered_age_seconds"] >= 0
    metrics = samples(textfile)
    assert metrics["ates_poller_webhook_undelivered_events"] == 2
    assert metrics["ates_poller_webhook_oldest_undelivered_timestamp_seconds"] == \
        datetime.fromisoformat(box.outbox()[0]["created"]).timestamp()
    assert [e["status"] for e in box.outbox()] == ["failed", "pending"]
    assert [e["status"] for e in poller_json(box.config, capsys, "outbox", "--status",
                                             "pending")] == ["pending"]
    capsys.readouterr()
    assert poller(box.config, "status", "--no-mailbox") == 5  # no pass recorded: stale
    assert "webhook events:   2 undelivered, the oldest" in capsys.readouterr().out

    receiver.start()
    assert len(box.deliver(after=3600).delivered) == 2
    status = status_json(box.config, capsys)
    assert (status["undelivered_events"], status["oldest_undelivered_age_seconds"]) == (0, None)
    metrics = samples(textfile)
    assert metrics["ates_poller_webhook_undelivered_events"] == 0
    assert "ates_poller_webhook_oldest_undelivered_timestamp_seconds" not in metrics


def status_json(config, capsys) -> dict[str, object]:
    """`status --no-mailbox --json`, which exits 5 here: no pass was recorded."""
    capsys.readouterr()
    assert poller(config, "status", "--no-mailbox", "--json") == 5
    return json.loads(capsys.readouterr().out)


def samples(textfile) -> dict[str, float]:
    return {s.name: s.value for f in text_string_to_metric_families(textfile.read_text())
            for s in f.samples}


def test_no_secret_in_the_log_errors_check_or_the_outbox(tmp_path, imap_account, receiver):
    token_in_url = "qs-Token-5b8e"
    password_in_url = "url-Pass-77c1"
    url = receiver.url.replace("http://", f"http://hook:{password_in_url}@") + \
        f"?token={token_in_url}"
    config = settings(tmp_path, imap_account, receiver, url=url, initial_wait="0.1")
    receiver.answers = [500]
    imap_account.append("INBOX", alert_mail(tok=token(AlertID="Kaseya:1")))
    outputs = {}
    for n, args in enumerate((["-vv", "once"], ["-vv", "once"], ["outbox", "--json"], ["check"],
                              ["status", "--json"])):
        done = run_subprocess(config, *args)
        assert done.returncode == 0, done.stderr
        outputs[f"{n}: {' '.join(args)}"] = done.stdout + done.stderr
    receiver.stop()
    done = run_subprocess(config, "check", "--webhook-ping")
    assert done.returncode == 8
    outputs["ping to nothing"] = done.stdout + done.stderr
    assert "answered HTTP 500" in outputs["0: -vv once"]
    assert "url = http://hook:********@127.0.0.1" in outputs["3: check"]
    assert "token=" not in outputs["3: check"]
    assert [d.status for d in receiver.requests] == [500, 200]
    for where, text in outputs.items():
        for secret in (SECRET, token_in_url, password_in_url):
            assert secret not in text, f"{secret!r} appears in {where}"
    assert json.loads(query(tmp_path / "tickets.db", "SELECT body FROM outbox")[0][0])["id"]
