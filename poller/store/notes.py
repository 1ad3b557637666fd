"""Notes and attachments of tickets: the note rows, and attachment content in the database or
in files under [attachments] directory at its content address."""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import datetime
from pathlib import Path

from poller.ates.decision import TITLE_LIMIT, Decision
from poller.store.database import iso
from poller.store.engine import Engine

logger = logging.getLogger(__name__)


def write_note(db: Engine, ticket_id: int, kind: str, title: str, text: str,
               now: datetime) -> None:
    """Add a note to the ticket (on PostgreSQL in a chunk, without waiting for the answer)."""
    db.sql("INSERT INTO ticket_note (ticket_id, kind, title, text, created) "
           "VALUES (?, ?, ?, ?, ?)", (ticket_id, kind, title[:TITLE_LIMIT], text, iso(now)))


def note_with_id(db: Engine, ticket_id: int, kind: str, title: str, text: str,
                  now: datetime) -> int:
    """Add a note to the ticket; return its id."""
    return db.insert("INSERT INTO ticket_note (ticket_id, kind, title, text, created) "
                     "VALUES (?, ?, ?, ?, ?)",
                  (ticket_id, kind, title[:TITLE_LIMIT], text, iso(now))).fetchall()[0][0]


def attach(db: Engine, ticket_id: int, note_id: int | None, decision: Decision,
            now: datetime, directory: Path | None) -> None:
    """Store the attachments the decision keeps, and a note for each one it refused."""
    for text in decision.refused_attachments:
        write_note(db, ticket_id, "system", "Attachment not stored", text, now)
    for item in decision.attachments:
        digest = hashlib.sha256(item.content).hexdigest()
        content: bytes | None = item.content
        path = None
        if directory is not None:
            content, path = None, str(content_file(directory, digest, item.content))
        db.sql(
            "INSERT INTO attachment (ticket_id, note_id, filename, content_type, size, sha256, "
            "content, path, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ticket_id, note_id, item.filename[:255], item.content_type, item.size, digest,
             content, path, iso(now)),
        )


def content_file(directory: Path, digest: str, content: bytes) -> Path:
    """Return the file that holds content at its content address under directory.

    It is written unless a file of the right size is there already (one of another size was
    cut short, or changed, and is written again): to a temporary file that is synced before it
    is renamed into place, and the rename is synced too, so the file is on disk before the
    decision that names it commits.
    """
    target = directory / digest[:2] / digest
    try:
        size = target.stat().st_size
    except FileNotFoundError:
        size = None
    if size == len(content):
        return target
    if size is not None:
        logger.warning("attachment file %s has %d bytes instead of %d; writing it again",
                       target, size, len(content))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    for folder in (target.parent, directory):
        _sync_folder(folder)
    return target


def _sync_folder(folder: Path) -> None:
    """Make the entries of folder (a file renamed into it, a new sub-folder) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
