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
_PARSED_HEADERS = (b"message-id", b"subject", b"mime-version")
_PLUCKED_HEADERS = (b"from", b"date")


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
    head, plucked = _split_headers(raw)
    try:
        parsed = _MailParser.from_bytes(head)
    except MailParserError as exc:
        raise MessageError(f"unparseable MIME: {exc}") from None
    except (RecursionError, LookupError, ValueError, TypeError, AttributeError) as exc:
        raise MessageError(f"unparseable MIME: {type(exc).__name__}: {exc}") from None
    message = parsed.message
    return ParsedMessage(
        message_id=_message_id(message.get("Message-ID")),
        subject=" ".join(_header_text(parsed.subject).split()),
        sender=plucked.get(b"from", ""),
        date=_date(plucked.get(b"date")),
        text="\n".join(parsed.text_plain),
        html="\n".join(parsed.text_html),
        attachments=tuple(_attachment(a) for a in parsed.attachments),
        defects=tuple(str(d) for d in parsed.defects_categories),
    )


def _split_headers(raw: bytes) -> tuple[bytes, dict[bytes, str]]:
    """Return raw without the top-level headers mail-parser need not see, and From and Date.

    mail-parser analyses every trace hop, address and date header, which costs more than the
    rest of a typical alert; only Message-ID, Subject, MIME-Version and Content-* are read from
    it, and From and Date (first of each) are taken here. From the first line that is not a
    header on, everything is kept as it is, so a malformed mail reaches mail-parser unchanged.
    """
    ends = [end for end in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if end >= 0]
    if not ends:
        return raw, {}
    end = min(ends)
    lines = raw[:end].split(b"\n")
    kept: list[bytes] = []
    plucked: dict[bytes, list[bytes]] = {}
    keep, pluck = False, None
    for index, line in enumerate(lines):
        if line[:1] in (b" ", b"\t"):
            if keep:
                kept.append(line)
            elif pluck is not None:
                pluck.append(line)
            continue
        match = _HEADER_NAME_RE.match(line)
        if match is None and index == 0 and line.startswith(b"From "):
            kept.append(line)  # an mbox separator, which the parser skips
            continue
        if match is None:
            kept.extend(lines[index:])
            break
        name = match.group(0)[:-1].lower()
        keep = name in _PARSED_HEADERS or name.startswith(b"content-")
        pluck = None
        if keep:
            kept.append(line)
        elif name in _PLUCKED_HEADERS and name not in plucked:
            pluck = plucked[name] = [line[match.end():]]
    values = {name: " ".join(b" ".join(parts).decode("utf-8", "replace").split())
              for name, parts in plucked.items()}
    if not kept:
        return raw[end:].split(b"\n", 1)[1], values
    # The last kept line may have lost its LF to the split; raw[end:] brings the line end.
    return b"\n".join(kept).removesuffix(b"\r") + raw[end:], values


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
