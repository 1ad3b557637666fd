"""What a parsed mail is: its ParsedMessage and Attachments, plain values that cross from the
reading helper to the worker. Apart from poller.mail.message, which makes them, so that the
worker, which only receives them, does not load the MIME parser and mail-parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The MIME types of a mail that is a whole forwarded message (or a part that is one).
FORWARDED_TYPES = ("message/rfc822", "message/global")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes = b""

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True)
class ParsedMessage:
    """A mail's decoded headers and body texts; content_type is the top-level MIME type
    (message/rfc822 for a mail that is a whole forwarded message); references, the
    Message-IDs the mail answers (In-Reply-To first, then References from the newest back)."""

    message_id: str | None
    subject: str
    sender: str
    date: datetime | None
    text: str
    html: str
    attachments: tuple[Attachment, ...]
    content_type: str = "text/plain"
    references: tuple[str, ...] = ()
    auth_results: tuple[str, ...] = ()  # the Authentication-Results header values


def utf8(text: str) -> bytes:
    """Return text as UTF-8 bytes, never raising: characters that a surrogateescape decoding
    kept as lone surrogates become their original bytes again, and should text hold another
    lone surrogate (a decoder that passes them), every surrogate is written as its code point."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")
