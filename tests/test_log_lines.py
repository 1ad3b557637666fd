"""What a sender wrote reaches a text log line or a terminal with its control characters
escaped: a Message-ID or subject cannot forge log lines, rewrite the terminal (ESC sequences)
or reorder what is shown (bidi overrides)."""

from __future__ import annotations

import logging

from poller.mail.printable import printable
from testkit.harness import Harness
from testkit.support import alert_mail, poller, token

EVIL_ID = "<a\x1b]0;pwned\x07b@x>"
EVIL_SUBJECT = "Disk full\x1b[2J\x1b[31m on \u202eSRV1"


def _hostile(raw: bytes) -> bytes:
    """Put EVIL_ID and EVIL_SUBJECT in raw's header as bytes (a mail library would refuse)."""
    head, _, body = raw.partition(b"\n\n")
    lines = [line for line in head.split(b"\n")
             if not line.lower().startswith((b"message-id:", b"subject:"))]
    lines += [b"Message-ID: " + EVIL_ID.encode(), b"Subject: " + EVIL_SUBJECT.encode()]
    return b"\n".join(lines) + b"\n\n" + body


def test_printable_escapes_what_does_not_print_and_keeps_the_rest():
    assert printable("Disk full on SRV1 – 99 % (Zürich)") == "Disk full on SRV1 – 99 % (Zürich)"
    assert printable("a\x1b[2Jb\rc\u202ed") == "a\\x1b[2Jb\\rc\\u202ed"
    assert printable("one\ntwo\tthree\x07", keep="\n\t") == "one\ntwo\tthree\\x07"


def test_the_per_mail_log_line_and_the_listings_escape_control_characters(tmp_path, caplog,
                                                                         capsys):
    box = Harness(tmp_path)
    box.mailbox.add(_hostile(alert_mail(tok=token(AlertID="Kaseya:1"))))
    with caplog.at_level(logging.INFO, logger="poller.service.handling"):
        assert box.run().counts == {"created": 1}
    (line,) = [r.getMessage() for r in caplog.records if "outcome=" in r.getMessage()]
    assert "message_id=<a\\x1b]0;pwned\\x07b@x>" in line
    capsys.readouterr()
    config = tmp_path / "settings.ini"
    assert poller(config, "messages") == 0
    assert poller(config, "ticket", box.tickets()[0]["number"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert "Disk full\\x1b[2J\\x1b[31m on \\u202eSRV1" in out
