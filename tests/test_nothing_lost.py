"""Nothing is lost: every fixture mail, hostile or broken, ends up in exactly one place.

All fixtures (ATES cases, mail shapes and XML attacks, the third-party corpus, fuzzing finds)
go into one Dovecot INBOX and one `poller once` runs over them, with the bounds at work: mail
that runs over the reading time budget or kills the reading helper, chunks cut by bytes, and a
mail the server will not hand over (a message file Dovecot cannot read; a FETCH answered NO).
Then each mail is in exactly one of:

* the INBOX untouched (no token, and `on_no_token = leave`), logged `skipped`;
* the processed place (flagged in the INBOX, or moved to the processed folder), logged with a
  ticket outcome, a clear without a ticket (`skipped`) or `duplicate`;
* the quarantine folder, logged `quarantined` with a reason.

Mails are identified by their bytes (Dovecot hands back what was appended), joined to the
processed-message log through the UID each got in the INBOX.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

import pytest

from poller.service import reader
from testkit import misreading
from testkit.proxy import TcpProxy, refusing
from testkit.support import alert_mail, poller, poller_json, token, write_settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MAILS = sorted(p for folder in ("ates", "shapes", "corpus", "fuzz-regressions")
               for p in (FIXTURES / folder).rglob("*")
               if p.is_file() and p.suffix not in (".json", ".py", ".md"))
SEEN, KEYWORD = b"\\Seen", b"$AtesProcessed"
DONE = {"created", "appended", "completed", "skipped", "duplicate"}


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def bounded_mails() -> list[bytes]:
    """Mails for the bounds: over the time budget, killing the helper, three of 400 KB (chunks
    are cut at 512 KiB), and one the server will not hand over."""
    rng = random.Random(9)
    big = [alert_mail(subject=f"Backup report {n}", tok=token(AlertID=f"Bounds:{n}"),
                      attachments=(("report.bin", rng.randbytes(300_000),
                                    "application/octet-stream"),)) for n in range(3)]
    return [misreading.misread(alert_mail(subject="Runs over the time budget"), "spin"),
            misreading.misread(alert_mail(subject="Kills the reading helper"), "crash"), *big,
            alert_mail(subject="Refused by the server", tok=token(AlertID="Bounds:refused"))]


@pytest.mark.parametrize(("on_success", "max_bytes"), [
    ("flag", "31457280"),
    ("move", "100000"),  # also the size limit: the larger corpus mails are never downloaded
])
def test_every_fixture_mail_ends_in_exactly_one_place(tmp_path, imap_account, capsys, on_success,
                                                      max_bytes, monkeypatch):
    monkeypatch.setattr(reader, "READ", misreading.read)
    extra = bounded_mails()
    for raw in [path.read_bytes() for path in MAILS] + extra:
        imap_account.append("INBOX", raw)
    appended = {uid: _digest(raw) for uid, _, raw in imap_account.messages("INBOX")}
    assert len(appended) == len(MAILS) + len(extra)
    refused_uid = max(appended)
    if on_success == "flag":
        damaged, proxy = _file_of(imap_account, extra[-1]), nullcontext()
        damaged.chmod(0)  # every FETCH of it ends Dovecot's session
    else:
        damaged, proxy = None, TcpProxy(imap_account.port, deny=refusing(refused_uid))
    with proxy:
        port = proxy.port if damaged is None else imap_account.port
        config = write_settings(
            tmp_path, imap_account, mailbox={"on_success": on_success},
            imap={"fetch_chunk": "50", "port": str(port)},
            limits={"max_message_bytes": max_bytes, "max_read_seconds": "1",
                    "max_fetch_bytes": str(1024 * 1024)},
            retry={"initial_wait": "0.05", "max_wait": "0.2"})
        try:
            assert poller(config, "once") == 0
        finally:
            if damaged is not None:
                for path in _files(imap_account):
                    path.chmod(0o600)  # it was moved to the quarantine as it was
    log = {row["uid"]: row for row in poller_json(config, capsys, "messages", "--limit", "0")}
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
        elif row["outcome"] == "skipped" and any(
                why in (row["reason"] or "") for why in ("no <Autotask> token",
                                                         "not the sender's own")):
            expected = "inbox untouched"  # [mailbox] on_no_token = leave
        else:
            assert row["outcome"] in DONE, row
            expected = "processed"
        assert places[expected][digest] >= 1, (uid, row, expected)
        places[expected][digest] -= 1
    assert all(count == 0 for counter in places.values() for count in counter.values())
    outcomes = Counter(row["outcome"] for row in log.values())
    assert outcomes["created"] > 0 and outcomes["quarantined"] > 0 and outcomes["skipped"] > 0
    oversized = [row for row in log.values() if "over the limit" in (row["reason"] or "")]
    assert len(oversized) == sum(len(p.read_bytes()) > int(max_bytes) for p in MAILS) + sum(
        len(raw) > int(max_bytes) for raw in extra)
    reasons = {uid: log[uid]["reason"] for uid in sorted(appended)[-len(extra):]}
    spun, crashed, *_, refused = reasons.values()
    assert spun == "reading it took more than 1 s of CPU ([limits] max_read_seconds)"
    assert crashed.startswith("the reading helper ended while reading it (killed by signal 9")
    assert refused.startswith("the server refused to return it: ")
    assert (damaged is None) == ("refused by the test proxy" in refused)


def _files(account) -> list[Path]:
    maildir = Path(account.server.mail_dir) / account.username / "Maildir"
    return [Path(root) / name for root, _, names in os.walk(maildir)
            for name in names if Path(root).name in ("new", "cur")]


def _file_of(account, raw: bytes) -> Path:
    """Return the message file in the account's maildir that holds RAW."""
    (found,) = [path for path in _files(account)
                if path.read_bytes().replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")]
    return found
