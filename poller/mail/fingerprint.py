"""The fingerprint of a mail: the same value for every delivery of the same mail."""

from __future__ import annotations

import hashlib

from poller.mail.message import ParsedMessage


def fingerprint(message: ParsedMessage | None, raw: bytes) -> str:
    """Return a hex digest that names the same mail however often it is delivered.

    Trace headers differ between deliveries and are left out: the digest covers the
    Message-ID, the subject and the body (for a mail that could not be parsed, the raw header
    block and the body).
    """
    split = raw.find(b"\r\n\r\n")
    if split < 0:
        split = raw.find(b"\n\n")
    body = raw[split:] if split >= 0 else raw
    digest = hashlib.sha256()
    if message is not None:
        digest.update((message.message_id or "").encode("utf-8", "surrogateescape"))
        digest.update(b"\0" + message.subject.encode("utf-8", "surrogateescape") + b"\0")
    else:
        digest.update(raw[:split] if split >= 0 else b"")
    digest.update(body)
    return digest.hexdigest()
