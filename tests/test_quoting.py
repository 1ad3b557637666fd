"""Replies and forwards as real mail clients write them: the quoted part is found in every
client's format and language, so a token that stands only there creates, appends and completes
nothing; the reply and forward prefixes of subjects, after tags, localized and counted.

fixtures/replies/ holds Outlook's, Gmail's, Apple Mail's and Thunderbird's reply and forward of
an alert in English, French and German (written by fixtures/replies/make_replies.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from poller.ates.alert import read_alert
from poller.ates.rules import decide_alert
from poller.mail.html import html_to_text
from poller.mail.message import parse_message
from poller.mail.quoting import new_text, quote_start, reply_prefix
from testkit.harness import NOW
from testkit.rules import Directory, policy

REPLIES = Path(__file__).resolve().parent.parent / "fixtures" / "replies"
MAILS = sorted(REPLIES.glob("*.eml"))


def _expected(path: Path) -> dict:
    return json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))


def test_every_client_reply_and_forward_in_each_language_is_there():
    names = {path.stem for path in MAILS}
    assert names == {f"{client}_{kind}_{lang}" for client in ("outlook", "gmail", "apple",
                                                               "thunderbird")
                     for kind in ("reply", "forward") for lang in ("en", "fr", "de")}


@pytest.mark.parametrize("path", MAILS, ids=[p.stem for p in MAILS])
def test_a_token_quoted_by_a_client_is_not_the_senders(path):
    raw = path.read_bytes()
    expected = _expected(path)
    alert = read_alert(parse_message(raw), NOW)
    assert reply_prefix(alert.message.subject) == expected["prefix"]
    assert alert.quoted, "the token was not found quoted"
    decision = decide_alert(alert, Directory(), policy())
    assert decision.outcome.value == "skipped"
    assert "not the sender's own" in decision.reason


@pytest.mark.parametrize("path", MAILS, ids=[p.stem for p in MAILS])
def test_the_body_alone_tells_the_quote_when_the_subject_lost_its_prefix(path):
    raw = re.sub(rb"(?m)^Subject: [^:\r\n]+: ", b"Subject: ", path.read_bytes())
    alert = read_alert(parse_message(raw), NOW)
    assert reply_prefix(alert.message.subject) is None
    decision = decide_alert(alert, Directory(), policy())
    assert decision.outcome.value == "skipped", alert.quoted


@pytest.mark.parametrize("path", MAILS, ids=[p.stem for p in MAILS])
def test_what_the_person_wrote_is_the_text_above_the_quote(path):
    message = parse_message(path.read_bytes())
    text = message.text or html_to_text(message.html)
    assert new_text(text).split("\n")[0] == _expected(path)["new_text"]


@pytest.mark.parametrize(("subject", "prefix"), [
    ("RE: Disk full", "RE"), ("Re: Disk full", "Re"), ("FW: Disk full", "FW"),
    ("Fwd: Disk full", "Fwd"), ("[EXTERNAL] RE: RESOLVED: Disk full", "RE"),
    ("[EXT] [SPAM?] Fwd: Disk full", "Fwd"), ("Re[2]: Disk full", "Re"), ("RE^2: Disk full", "RE"),
    ("Re(3): Disk full", "Re"), ("TR : Disk full", "TR"), ("RV: Disk full", "RV"),
    ("RES: Disk full", "RES"), ("ENC: Disk full", "ENC"), ("R: Disk full", "R"),
    ("I: Disk full", "I"), ("Odp: Disk full", "Odp"), ("PD: Disk full", "PD"),
    ("VS: Disk full", "VS"), ("AW: Disk full", "AW"), ("WG: Disk full", "WG"),
    ("SV: Disk full", "SV"), ("Antw: Disk full", "Antw"), ("  re : Disk full", "re"),
])
def test_reply_and_forward_prefixes(subject, prefix):
    assert reply_prefix(subject) == prefix


@pytest.mark.parametrize("subject", [
    "Disk full on SRV1", "Disk full on SRV1: re-check in 5 min", "SRV1 RE: disk",
    "[EXTERNAL] Disk full", "Report: backup done", "Resolved: Disk full", "Reply needed: x",
    "[RE:] Disk full", "Ire: x", "RE2: x",
])
def test_subjects_without_a_prefix(subject):
    assert reply_prefix(subject) is None


@pytest.mark.parametrize(("text", "kind"), [
    ("ok\n\n________________________________\nFrom: A <a@x>\nSent: Sunday\nTo: B\n"
     "Subject: s\n\nbody", "From/Sent/To/Subject"),
    ("ok\n\n*From:* A <a@x>\n*Sent:* Sunday\n*To:* B\n*Cc:* C\n*Subject:* s\n\nbody",
     "From/Sent/To/Subject"),
    ("ok\n\nDe : A\nEnvoyé : dimanche\nÀ : B\nObjet : s\n\nbody", "From/Sent/To/Subject"),
    ("ok\n\nVon: A\nGesendet: Sonntag\nAn: B\nBetreff: s\n\nbody", "From/Sent/To/Subject"),
    ("ok\n\nOn Sun, Nov 29, 2026 at 10:00 AM A <a@x> wrote:\n\nbody", "wrote"),
    ("ok\n\nOn Sun, Nov 29, 2026 at 10:00 AM A <\na@x> wrote:\n\nbody", "wrote"),
    ("ok\n\nLe dim. 29 nov. 2026 à 10:00, A <a@x> a écrit :\n\nbody", "wrote"),
    ("ok\n\nAm 29.11.26 um 10:00 schrieb A:\n\nbody", "wrote"),
    ("ok\n\n-----Original Message-----\nbody", "forwarded or original"),
    ("ok\n\n-----Message d'origine-----\nbody", "forwarded or original"),
    ("ok\n\n-----Ursprüngliche Nachricht-----\nbody", "forwarded or original"),
    ("ok\n\nAnfang der weitergeleiteten Nachricht:\nbody", "forwarded or original"),
    ("ok\n> body", "> lines"),
])
def test_the_quoted_part_starts_where_the_client_marks_it(text, kind):
    quote = quote_start(text)
    assert quote is not None and kind in quote.kind
    assert new_text(text) == "ok"


@pytest.mark.parametrize("text", [
    "Disk C: is 99% full.\nFrom: SRV1\nSeverity: high",
    "Backup job: done\nFrom: NAS01\nDate: today\nStatus: ok",  # no To and Subject lines
    "The agent wrote: 5 files to the share.",
    "Threshold > 90%",
    "Le disque est plein.",
])
def test_alert_text_that_only_looks_quoted(text):
    assert quote_start(text, marks=False) is None
