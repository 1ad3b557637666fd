"""Replies and forwards end to end against the private Dovecot: `poller once` notes a reply on
its ticket and flags it, and neither a client's forward of the alert (no thread headers, the
token quoted without `>`) nor a tagged reply that says RESOLVED opens or closes a ticket."""

from __future__ import annotations

from pathlib import Path

from testkit.support import alert_mail, poller, poller_json, token, write_settings

REPLIES = Path(__file__).resolve().parent.parent / "fixtures" / "replies"
ALERT_ID = "<alert-1001@rmm.client.example>"  # the Message-ID the fixtures' replies answer
KEYWORD = b"$AtesProcessed"


def test_replies_are_noted_and_forwards_open_nothing(tmp_path, imap_account, capsys):
    config = write_settings(tmp_path, imap_account)
    (tmp_path / "organizations.csv").write_text("name,Kaseya Customer ID\nClient One,100\n")
    assert poller(config, "import", "organizations", str(tmp_path / "organizations.csv")) == 0
    imap_account.append("INBOX", alert_mail(
        subject="Disk full on SRV1", message_id=ALERT_ID,
        tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:5")))
    assert poller(config, "once") == 0

    reply = (REPLIES / "outlook_reply_fr.eml").read_bytes()
    tagged = reply.replace(b"Subject: RE: Disk full", b"Subject: [EXTERNAL] RE: RESOLVED: Disk full")
    tagged = tagged.replace(b"<reply-2002@msp.example>", b"<reply-2003@msp.example>")
    for name in ("outlook_forward_fr.eml", "gmail_forward_de.eml", "thunderbird_forward_en.eml"):
        imap_account.append("INBOX", (REPLIES / name).read_bytes())
    imap_account.append("INBOX", reply)
    imap_account.append("INBOX", tagged)
    assert poller(config, "once") == 0

    (ticket,) = poller_json(config, capsys, "tickets")
    assert (ticket["status"], ticket["occurrences"]) == ("New", 1)
    assert [n["kind"] for n in ticket["notes"]] == ["reply", "reply"]
    assert ticket["notes"][0]["text"].endswith("Je m'en occupe maintenant.\n\nJane")
    rows = poller_json(config, capsys, "messages")[::-1]  # oldest first, as delivered
    assert [r["outcome"] for r in rows] == ["created", "skipped", "skipped", "skipped", "noted",
                                            "noted"]
    assert {r["ticket"] for r in rows if r["outcome"] == "noted"} == {ticket["number"]}
    flags = [f for _, f, _ in imap_account.messages("INBOX")]
    assert [KEYWORD in f for f in flags] == [True, False, False, False, True, True]
