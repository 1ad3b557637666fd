"""Several mailboxes, one database: two `once` processes at the same time on two mailboxes of
the private Dovecot, with alerts that arrive in both."""

from __future__ import annotations

import json
from collections import Counter

from testkit.serving import SLOW, Child, append_many
from testkit.support import alert_mail, poller, token, write_settings


def settings_for(tmp_path, account, name: str, queue: str):
    folder = tmp_path / name
    folder.mkdir()
    return write_settings(folder, account, imap={"name": name, "fetch_chunk": "3"},
                          database={"url": f"sqlite:///{tmp_path}/tickets.db"},
                          tickets={"queue": queue}, schedule={"lock_wait": "0"})


def test_two_mailboxes_at_once_make_one_ticket_per_alert(tmp_path, dovecot, capsys):
    first, second = dovecot.account(), dovecot.account()
    a = settings_for(tmp_path, first, "rmm-a", "Queue A")
    b = settings_for(tmp_path, second, "rmm-b", "Queue B")
    both, only_a, only_b = [], [], []
    for n in range(8):
        # the same mail delivered to both mailboxes (the RMM sends one mail to two addresses)
        both.append(alert_mail(subject=f"Copy {n}", message_id=f"<copy-{n}@rmm.example>",
                               tok=token(AlertID=f"Kaseya:copy-{n}")))
        # the same alert sent twice, once to each mailbox: two occurrences
        only_a.append(alert_mail(subject=f"Again {n}", body="first",
                                 tok=token(AlertID=f"Kaseya:again-{n}")))
        only_b.append(alert_mail(subject=f"Again {n}", body="second",
                                 tok=token(AlertID=f"Kaseya:again-{n}")))
        only_a.append(alert_mail(subject=f"A {n}", tok=token(AlertID=f"Kaseya:a-{n}")))
        only_b.append(alert_mail(subject=f"B {n}", tok=token(AlertID=f"Kaseya:b-{n}")))
    append_many(first, [m for pair in zip(both, only_a[::2], only_a[1::2], strict=True)
                        for m in pair])
    append_many(second, [m for pair in zip(only_b[1::2], only_b[::2], both, strict=True)
                         for m in pair])

    slow = SLOW.format(delay=0.02)
    with Child(a, "once", prelude=slow) as worker_a, Child(b, "once", prelude=slow) as worker_b:
        assert (worker_a.wait(), worker_b.wait()) == (0, 0), worker_a.log + worker_b.log
    for worker in (worker_a, worker_b):
        assert "another pass is running" not in worker.log
        assert "database is locked" not in worker.log

    capsys.readouterr()
    assert poller(a, "tickets", "--json") == 0
    tickets = json.loads(capsys.readouterr().out)
    by_title = {t["title"]: t for t in tickets}
    assert len(tickets) == len(by_title) == 32  # copies, repeated alerts, A's and B's own
    for n in range(8):
        assert by_title[f"Copy {n}"]["occurrences"] == 1
        assert by_title[f"Again {n}"]["occurrences"] == 2
        assert (by_title[f"A {n}"]["mailbox"], by_title[f"A {n}"]["queue"]) == ("rmm-a",
                                                                                "Queue A")
        assert (by_title[f"B {n}"]["mailbox"], by_title[f"B {n}"]["queue"]) == ("rmm-b",
                                                                                "Queue B")

    assert poller(b, "messages", "--json") == 0
    messages = json.loads(capsys.readouterr().out)
    assert Counter(m["mailbox"] for m in messages) == {"rmm-a": 24, "rmm-b": 24}
    assert Counter(m["outcome"] for m in messages) == {"created": 32, "duplicate": 8,
                                                       "appended": 8}
    copies = [m for m in messages if m["subject"].startswith("Copy")]
    assert all(Counter(m["outcome"] for m in copies if m["subject"] == f"Copy {n}")
               == {"created": 1, "duplicate": 1} for n in range(8))
    assert all(len({m["ticket"] for m in copies if m["subject"] == f"Copy {n}"}) == 1
               for n in range(8))

    for config, name in ((a, "rmm-a"), (b, "rmm-b")):
        assert poller(config, "status", "--json", "--no-mailbox") == 0
        status = json.loads(capsys.readouterr().out)
        assert status["mailbox"] == name and status["passes_ok"] == 1
        assert sum(status["mails"].values()) == 24
