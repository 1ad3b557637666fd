"""The fingerprint of a mail: the same value for every delivery of the same mail, and another
for a new mail that happens to say the same (the next occurrence of a recurring alert)."""

from __future__ import annotations

import hashlib

from poller.mail.parsed import ParsedMessage, utf8


def fingerprint(message: ParsedMessage | None, raw: bytes) -> str | None:
    """Return a hex digest that names the same mail however often it is delivered, or None
    when nothing tells a second delivery from a new mail with the same text.

    Trace headers differ between deliveries and are left out. A mail with a Message-ID is
    named by it, the subject and the body (the digest earlier releases wrote, so a copy of a
    mail they decided is still recognised). Without a Message-ID, subject and body are the
    same on every occurrence of a recurring alert, so the sender (From) and the Date are taken
    too; a mail with neither Message-ID nor Date gets None. A mail that could not be parsed is
    named by its raw header block and body.
    """
    split = raw.find(b"\r\n\r\n")
    if split < 0:
        split = raw.find(b"\n\n")
    body = raw[split:] if split >= 0 else raw
    digest = hashlib.sha256()
    if message is None:
        digest.update(raw[:split] if split >= 0 else b"")
    elif message.message_id:
        digest.update(utf8(message.message_id))
        digest.update(b"\0" + utf8(message.subject) + b"\0")
    elif message.date is not None:
        # a prefix no Message-ID can give, so the digest never equals one of the above
        digest.update(b"\0no Message-ID\0" + utf8(message.sender))
        digest.update(b"\0" + message.date.isoformat().encode("ascii") + b"\0")
        digest.update(utf8(message.subject) + b"\0")
    else:
        return None
    digest.update(body)
    return digest.hexdigest()
