"""A mail whose recording fails is quarantined alone; the rest of its chunk is recorded."""

from __future__ import annotations

from poller.store import record as ticket_writes
from testkit.support import alert_mail, poller, poller_json, token, write_settings


def test_a_failing_mail_is_quarantined_alone(tmp_path, imap_account, capsys, monkeypatch):
    config = write_settings(tmp_path, imap_account, imap={"fetch_chunk": "10"})
    for n, subject in enumerate(("Disk full", "BOOM on SRV2", "CPU high")):
        imap_account.append("INBOX", alert_mail(subject=subject, tok=token(AlertID=f"Kaseya:{n}")))
    create = ticket_writes._create

    def failing_create(store, decision, alert, now, attachments):
        made = create(store, decision, alert, now, attachments)  # written, then undone
        if alert.title.startswith("BOOM"):
            raise RuntimeError("boom")
        return made

    monkeypatch.setattr(ticket_writes, "_create", failing_create)
    assert poller(config, "once") == 0
    rows = poller_json(config, capsys, "messages")
    assert [(m["subject"], m["outcome"]) for m in rows] == [
        ("Disk full", "created"), ("BOOM on SRV2", "quarantined"), ("CPU high", "created")]
    assert rows[1]["reason"] == "internal error: RuntimeError: boom" and rows[1]["ticket"] is None
    tickets = poller_json(config, capsys, "tickets")
    assert [t["title"] for t in tickets] == ["Disk full", "CPU high"]
    assert [t["udfs"] for t in tickets] == [{"Kaseya Alert ID": "0"}, {"Kaseya Alert ID": "2"}]
    assert len(imap_account.messages("Quarantine")) == 1
