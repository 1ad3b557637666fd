"""Nothing is lost: every fixture mail, hostile or broken, ends up in exactly one place.

All fixtures (ATES cases, mail shapes and XML attacks, the third-party corpus, fuzzing finds)
go into one Dovecot INBOX and one `poller once` runs over them. Then each mail is in exactly
one of:

* the INBOX untouched (no token, and `on_no_token = leave`), logged `skipped`;
* the processed place (flagged in the INBOX, or moved to the processed folder), logged with a
  ticket outcome, a clear without a ticket (`skipped`) or `duplicate`;
* the quarantine folder, logged `quarantined` with a reason.

Mails are identified by their bytes (Dovecot hands back what was appended), joined to the
processed-message log through the UID each got in the INBOX.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from testkit.support import poller, poller_json, write_settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MAILS = sorted(p for folder in ("ates", "shapes", "corpus", "fuzz-regressions")
               for p in (FIXTURES / folder).rglob("*")
               if p.is_file() and p.suffix not in (".json", ".py", ".md"))
SEEN, KEYWORD = b"\\Seen", b"$AtesProcessed"
DONE = {"created", "appended", "completed", "skipped", "duplicate"}


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize(("on_success", "max_bytes"), [
    ("flag", "31457280"),
    ("move", "100000"),  # also the size limit: the larger corpus mails are never downloaded
])
def test_every_fixture_mail_ends_in_exactly_one_place(tmp_path, imap_account, capsys, on_success,
                                                      max_bytes):
    config = write_settings(tmp_path, imap_account, mailbox={"on_success": on_success},
                            imap={"fetch_chunk": "50"}, limits={"max_message_bytes": max_bytes})
    for path in MAILS:
        imap_account.append("INBOX", path.read_bytes())
    appended = {uid: _digest(raw) for uid, _, raw in imap_account.messages("INBOX")}
    assert len(appended) == len(MAILS)

    assert poller(config, "once") == 0
    log = {row["uid"]: row for row in poller_json(config, capsys, "messages")}
    assert sorted(log) == sorted(appended), "every mail has exactly one log row"

    places: dict[str, Counter[str]] = {
        "inbox untouched": Counter(), "processed": Counter(), "quarantine": Counter()}
    for _, flags, raw in imap_account.messages("INBOX"):
        done = SEEN in flags and KEYWORD in flags
        assert done or not ({SEEN, KEYWORD} & set(flags)), flags
        places["processed" if done else "inbox untouched"][_digest(raw)] += 1
    if on_success == "move":
        for _, _, raw in imap_account.messages("Processed"):
            places["processed"][_digest(raw)] += 1
    for _, _, raw in imap_account.messages("Quarantine"):
        places["quarantine"][_digest(raw)] += 1

    total = sum((counter for counter in places.values()), Counter())
    assert total == Counter(appended.values()), "no mail lost, none copied"
    for uid, digest in appended.items():
        row = log[uid]
        if row["outcome"] == "quarantined":
            expected = "quarantine"
            assert row["reason"] and not row["reason"].startswith("internal error"), row
        elif row["outcome"] == "skipped" and "no <Autotask> token" in (row["reason"] or ""):
            expected = "inbox untouched"
        else:
            assert row["outcome"] in DONE, row
            expected = "processed"
        assert places[expected][digest] >= 1, (uid, row, expected)
        places[expected][digest] -= 1
    assert all(count == 0 for counter in places.values() for count in counter.values())
    outcomes = Counter(row["outcome"] for row in log.values())
    assert outcomes["created"] > 0 and outcomes["quarantined"] > 0 and outcomes["skipped"] > 0
    oversized = [row for row in log.values() if "over the limit" in (row["reason"] or "")]
    assert len(oversized) == sum(len(p.read_bytes()) > int(max_bytes) for p in MAILS)
