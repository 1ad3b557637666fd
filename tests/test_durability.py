"""Durable before visible: a decision, and the attachment files it names, are on disk before
the mail is flagged or moved, so a power loss never leaves mail marked done without its
ticket. (A power loss itself cannot be staged here; what is checked is that every write is
synced before the step that depends on it.)"""

from __future__ import annotations

import hashlib
import os

import pytest

from poller.store.database import open_database
from testkit.harness import Harness
from testkit.support import alert_mail

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40
DIGEST = hashlib.sha256(PDF).hexdigest()


@pytest.fixture
def box(tmp_path, reader) -> Harness:
    harness = Harness(tmp_path, reader)
    harness.configure(database={"attachments_dir": str(tmp_path / "files")})
    return harness


def test_a_commit_is_synced_to_disk_before_it_returns(tmp_path):
    db = open_database(f"sqlite:///{tmp_path}/tickets.db")
    try:
        assert db.execute_sql("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute_sql("PRAGMA synchronous").fetchone() == (2,)  # FULL
    finally:
        db.close()


def test_an_attachment_file_is_synced_before_and_after_its_rename(box, tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    fsync, replace = os.fsync, os.replace

    def recorded_fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def recorded_replace(source, target) -> None:
        events.append(("rename", str(target)))
        replace(source, target)

    monkeypatch.setattr(os, "fsync", recorded_fsync)
    monkeypatch.setattr(os, "replace", recorded_replace)
    box.mailbox.add(alert_mail(attachments=(("report.pdf", PDF, "application/pdf"),)))
    box.run()
    target = tmp_path / "files" / DIGEST[:2] / DIGEST
    assert target.read_bytes() == PDF
    mine = [event for event in events if str(tmp_path / "files") in event[1]]
    assert mine == [("fsync", f"{target}.tmp"), ("rename", str(target)),
                    ("fsync", str(target.parent)), ("fsync", str(tmp_path / "files"))]


def test_a_file_of_the_wrong_size_at_the_content_address_is_written_again(box, tmp_path):
    target = tmp_path / "files" / DIGEST[:2] / DIGEST
    target.parent.mkdir(parents=True)
    target.write_bytes(PDF[:100])  # cut short, e.g. by a crash of a release that did not sync
    box.mailbox.add(alert_mail(attachments=(("report.pdf", PDF, "application/pdf"),)))
    box.run()
    assert target.read_bytes() == PDF
    (ticket,) = box.tickets()
    assert ticket["attachments"][0]["sha256"] == DIGEST
