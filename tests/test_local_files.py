"""The files `poller` creates are its user's alone (umask 077), except the metrics textfile,
which node_exporter, running as another user, must read."""

from __future__ import annotations

import os
import stat

from testkit.support import alert_mail, poller, token, write_settings


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_database_lock_and_attachments_are_private_and_metrics_readable(tmp_path, imap_account):
    previous = os.umask(0o022)  # a usual login umask, which the program must not rely on
    try:
        config = write_settings(tmp_path, imap_account,
                                database={"attachments_dir": "files"},
                                metrics={"textfile": "metrics/ates_poller.prom"})
        (tmp_path / "metrics").mkdir()
        imap_account.append("INBOX", alert_mail(tok=token(AlertID="Kaseya:1"), attachments=(
            ("report.pdf", b"%PDF-1.4 report", "application/pdf"),)))
        assert poller(config, "once") == 0
    finally:
        os.umask(previous)
    files = tmp_path / "files"  # attachments_dir = files: next to the settings file
    (lock,) = tmp_path.glob("tickets.db.*.lock")  # the mailbox's own lock file
    created = [tmp_path / "tickets.db", lock, files, *files.rglob("*")]
    assert len(created) == 5  # database, lock, files/, files/ab/, files/ab/abcd…
    for path in created:
        assert mode(path) & 0o077 == 0, f"{path} is {oct(mode(path))}"
    assert mode(tmp_path / "metrics" / "ates_poller.prom") == 0o644
    assert os.umask(previous) == previous  # and the caller's umask is given back
