"""Raw RFC 822 bytes → ParsedMessage: decoded subject, text and HTML bodies, attachments. Pure."""

from __future__ import annotations

import base64
import binascii
import email.utils
import logging
from dataclasses import dataclass
from datetime import datetime

from mailparser.exceptions import MailParserError

from poller.errors import MessageError
from poller.leanmail import LeanMailParser, split_headers

logger = logging.getLogger(__name__)

# mail-parser logs every header and part at DEBUG through f-strings; silence it so a
# DEBUG run of the worker stays readable and the hot path does not format those lines.
logging.getLogger("mailparser").setLevel(logging.WARNING)


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
    message_id: str | None
    subject: str
    sender: str
    date: datetime | None
    text: str
    html: str
    attachments: tuple[Attachment, ...]
    defects: tuple[str, ...]


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse raw mail bytes; raise MessageError when the bytes are not a mail at all."""
    split = split_headers(raw)
    try:
        parsed = LeanMailParser.from_bytes(split.head)
    except MailParserError as exc:
        raise MessageError(f"unparseable MIME: {exc}") from None
    except (RecursionError, LookupError, ValueError, TypeError, AttributeError) as exc:
        raise MessageError(f"unparseable MIME: {type(exc).__name__}: {exc}") from None
    message = parsed.message
    return ParsedMessage(
        message_id=_message_id(message.get("Message-ID")),
        subject=" ".join(_header_text(parsed.subject).split()),
        sender=split.sender,
        date=_date(split.date),
        text="\n".join(parsed.text_plain),
        html="\n".join(parsed.text_html),
        attachments=tuple(_attachment(a) for a in parsed.attachments),
        defects=tuple(str(d) for d in parsed.defects_categories),
    )


def _header_text(value: object) -> str:
    return "" if value is None else str(value)


def _message_id(value: object) -> str | None:
    text = _header_text(value).strip()
    return text[:998] or None


def _date(value: object) -> datetime | None:
    text = _header_text(value).strip()
    if not text:
        return None
    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def _attachment(item: dict) -> Attachment:
    payload = item.get("payload") or ""
    if item.get("binary"):
        try:
            content = base64.b64decode(payload)
        except (binascii.Error, ValueError):
            content = payload.encode("utf-8", "surrogateescape")
    else:
        content = payload.encode("utf-8", "surrogateescape")
    return Attachment(
        filename=str(item.get("filename") or "attachment"),
        content_type=str(item.get("mail_content_type") or "application/octet-stream"),
        content=content,
    )
