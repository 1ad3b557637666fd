"""Raw RFC 822 bytes → ParsedMessage: decoded subject, text and HTML bodies, attachments. Pure."""

from __future__ import annotations

import base64
import binascii
import email.utils
import logging
import re
from dataclasses import dataclass
from datetime import datetime

import mailparser
from mailparser.exceptions import MailParserError

from poller.errors import MessageError

logger = logging.getLogger(__name__)

# mail-parser logs every header and part at DEBUG through f-strings; silence it so a
# DEBUG run of the worker stays readable and the hot path does not format those lines.
logging.getLogger("mailparser").setLevel(logging.WARNING)

_HEADER_NAME_RE = re.compile(rb"[!-9;-~]+:")
_READ_HEADERS = (b"message-id", b"subject", b"from", b"date", b"mime-version")


class _MailParser(mailparser.MailParser):
    """mail-parser without .mail and .mail_partial, two summaries of every header and part
    that nothing here reads and that cost a fifth of a parse."""

    def _make_mail(self, complete: bool = True) -> dict:
        return {}


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
    try:
        parsed = _MailParser.from_bytes(_read_headers_only(raw))
    except MailParserError as exc:
        raise MessageError(f"unparseable MIME: {exc}") from None
    except (RecursionError, LookupError, ValueError, TypeError, AttributeError) as exc:
        raise MessageError(f"unparseable MIME: {type(exc).__name__}: {exc}") from None
    message = parsed.message
    return ParsedMessage(
        message_id=_message_id(message.get("Message-ID")),
        subject=" ".join(_header_text(parsed.subject).split()),
        sender=_header_text(message.get("From")),
        date=_date(message.get("Date")),
        text="\n".join(parsed.text_plain),
        html="\n".join(parsed.text_html),
        attachments=tuple(_attachment(a) for a in parsed.attachments),
        defects=tuple(str(d) for d in parsed.defects_categories),
    )


def _read_headers_only(raw: bytes) -> bytes:
    """Return raw without the top-level headers nothing here reads (Received, DKIM, To, …).

    mail-parser analyses every trace hop, address and date header, which costs more than the
    rest of a typical alert. Lines from the first one that is not a header on are kept as they
    are, so a malformed header block parses exactly as before.
    """
    ends = [end for end in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if end >= 0]
    if not ends:
        return raw
    end = min(ends)
    lines = raw[:end].split(b"\n")
    kept: list[bytes] = []
    keep = False
    for index, line in enumerate(lines):
        if line[:1] in (b" ", b"\t"):
            if keep:
                kept.append(line)
            continue
        match = _HEADER_NAME_RE.match(line)
        if match is None:
            kept.extend(lines[index:])
            break
        name = match.group(0)[:-1].lower()
        keep = name in _READ_HEADERS or name.startswith(b"content-")
        if keep:
            kept.append(line)
    if not kept:
        return raw[end:].split(b"\n", 1)[1]
    return b"\n".join(kept) + raw[end:]


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
