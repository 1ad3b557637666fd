"""Raw RFC 822 bytes → ParsedMessage (poller.mail.parsed): decoded subject, text and HTML bodies,
attachments."""

from __future__ import annotations

import base64
import binascii
import email.errors
import email.message
import email.parser
import email.policy
import email.utils
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

import mailparser
from mailparser.exceptions import MailParserError

from poller.errors import MessageError
from poller.mail.headers import Split, longest_parameter_header, split_headers
from poller.mail.parsed import FORWARDED_TYPES, Attachment, ParsedMessage, utf8

# mail-parser logs every header and part at DEBUG through f-strings; silence it so a
# DEBUG run of the worker stays readable and the hot path does not format those lines.
logging.getLogger("mailparser").setLevel(logging.WARNING)

FEED_CHUNK = 64 * 1024
# A Message-ID as In-Reply-To and References name it, and how many of them a mail keeps.
_MESSAGE_ID_RE = re.compile(r"<[^<>\s]{1,250}+>")
MAX_REFERENCES = 50
# Longer Content-Type and Content-Disposition headers (of any part) are refused; a real one, even
# with a long RFC 2231 filename, is far shorter.
MAX_PARAMETER_HEADER = 8 * 1024


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse raw mail bytes; raise MessageError when the bytes are not a mail at all.

    The MIME tree is the standard library's; mail-parser decodes the subject and lists the
    attachments. It analyses the whole mail to do so (every body decoded again, summaries of
    the mail), so a mail whose parts are all inline text bodies, which has no attachment to
    list, is not handed to it: that is most alerts, and reading them costs a sixth less.
    """
    # (a header that long needs a mail that long: most alerts are never scanned)
    longest = longest_parameter_header(raw) if len(raw) > MAX_PARAMETER_HEADER else 0
    if longest > MAX_PARAMETER_HEADER:
        # the standard library reads their parameters (a boundary, a filename, a charset) in
        # time that grows with the square of the header's length
        raise MessageError(f"unparseable MIME: a Content-Type or Content-Disposition header of "
                           f"{longest} bytes (at most {MAX_PARAMETER_HEADER} are read)")
    split = split_headers(raw)
    try:
        message = _mime_tree(split, raw)
        bodies = _bodies(message)
        listed = () if bodies.only_text else mailparser.MailParser(message).attachments
        subject = mailparser.get_header(message, "subject")
    except MailParserError as exc:
        raise MessageError(f"unparseable MIME: {_detail(exc)}") from None
    except RecursionError:
        raise MessageError("unparseable MIME: nested too deeply") from None
    except (email.errors.MessageError, LookupError, ValueError, TypeError, AttributeError) as exc:
        raise MessageError(f"unparseable MIME: {type(exc).__name__}: {_detail(exc)}") from None
    if not message.keys() and not split.fields:
        raise MessageError("unparseable MIME: the data has no mail headers")
    return ParsedMessage(
        message_id=_message_id(message.get("Message-ID")),
        subject=" ".join(_subject(message, subject).split()),
        sender=split.sender,
        date=_date(split.date),
        text=_lines("\n".join(bodies.plain)),
        html=_lines("\n".join(bodies.html)),
        attachments=(*(_attachment(a) for a in listed), *bodies.forwarded),
        content_type=message.get_content_type(),
        references=_references(split.in_reply_to, split.references),
        auth_results=split.auth_results,
    )


def _references(in_reply_to: str, references: str) -> tuple[str, ...]:
    """Return the Message-IDs a mail answers: In-Reply-To's, then References' from the newest
    (the last) back, each once, at most MAX_REFERENCES (a long thread's oldest are left out,
    but for the first, the thread's start)."""
    named = _MESSAGE_ID_RE.findall(references)
    ordered = [*_MESSAGE_ID_RE.findall(in_reply_to), *reversed(named[-MAX_REFERENCES:]),
               *named[:1]]
    return tuple(dict.fromkeys(ordered))[:MAX_REFERENCES]


@dataclass
class _Bodies:
    """The text/plain and text/html body texts, the inline forwarded mails, and whether every
    part of the mail was an inline text body (so that mail-parser would list no attachment)."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    forwarded: list[Attachment] = field(default_factory=list)
    only_text: bool = True


def _bodies(message: email.message.Message) -> _Bodies:
    """Gather the body texts of message.

    A forwarded or attached mail (message/rfc822) is not body text: a token in it belongs to
    someone else's alert, and an alert forwarded by a person must not authenticate as the
    monitoring system. mail-parser reads such parts as body, so the bodies are gathered here.
    """
    out = _Bodies(only_text=not message.defects)
    stack = [message]
    while stack:  # a loop, not recursion: nesting depth is up to the sender
        part = stack.pop()
        disposition = part.get_content_disposition()
        if part.get_filename() is not None or disposition not in (None, "inline") or (
                part.defects and part is not message):
            out.only_text = False
        if part.get_content_maintype() == "message" and part is not message:
            out.only_text = False
            # delivery reports and the like carry no text of their own; a forwarded mail that
            # mail-parser does not list (not Content-Disposition: attachment) is kept as one
            if part.get_content_type() in FORWARDED_TYPES and disposition != "attachment":
                out.forwarded.append(_forward(part))
            continue
        if part.is_multipart():
            payload = part.get_payload()
            stack.extend(reversed(payload if isinstance(payload, list) else []))
            continue
        subtype = part.get_content_subtype()
        if part.get_content_maintype() != "text" or subtype not in ("plain", "html"):
            out.only_text = False
            continue
        if disposition != "inline" and (disposition == "attachment" or part.get_filename()):
            continue
        text = _decoded_text(part)
        if text:
            (out.html if subtype == "html" else out.plain).append(text)
    return out


def _decoded_text(part: email.message.Message) -> str:
    """Return a text part's payload after transfer and charset decoding, never raising."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload:
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset)
    except (LookupError, UnicodeError):
        return payload.decode("utf-8", "replace")


def _forward(part: email.message.Message) -> Attachment:
    inner = part.get_payload()
    content = b""
    if isinstance(inner, list) and inner:
        try:
            content = inner[0].as_bytes()
        except (email.errors.MessageError, LookupError, ValueError, TypeError):
            content = b""
    return Attachment(filename=str(part.get_filename() or "forwarded-message.eml"),
                      content_type=part.get_content_type(), content=content)


def _subject(message: email.message.Message, decoded: object) -> str:
    """Return the (first) subject; raw 8-bit bytes are read as UTF-8, else as Windows-1252."""
    raw = next((value for name, value in message.raw_items() if name.lower() == "subject"), None)
    if isinstance(decoded, list):  # mail-parser gives a list when the header repeats
        decoded = decoded[0] if decoded else ""
    if not isinstance(raw, str) or raw.isascii():
        return _header_text(decoded)
    data = utf8(raw)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("windows-1252", "replace")


def _detail(exc: Exception) -> str:
    """Return an exception's message fit for a log line: printable, one line, 200 characters."""
    text = " ".join(str(exc).split())
    return "".join(c if c.isprintable() else "?" for c in text[:200])


def _mime_tree(split: Split, raw: bytes) -> email.message.Message:
    """Build the stdlib MIME tree that mail-parser reads from split.header and raw[split.body:].

    The bytes are fed in chunks: handing the whole mail to the parser at once (as
    mailparser.parse_from_bytes does) first copies it into one string and then into one
    string per line, which costs eight times the mail's size at its peak; chunks keep it
    near three.
    """
    feeder = email.parser.BytesFeedParser(policy=email.policy.compat32)
    feeder.feed(split.header)
    for start in range(split.body, len(raw), FEED_CHUNK):
        feeder.feed(raw[start:start + FEED_CHUNK])
    return feeder.close()


def _lines(text: str) -> str:
    """Return text with CRLF and CR line ends made LF, so the encoding does not show."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


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
    except (TypeError, ValueError, IndexError, OverflowError):  # e.g. a zone offset of 10**9 hours
        return None


def _attachment(item: dict) -> Attachment:
    payload = item.get("payload") or ""
    if item.get("binary"):
        try:
            content = base64.b64decode(payload)
        except (binascii.Error, ValueError):
            content = utf8(payload)
    else:
        content = utf8(payload)
    return Attachment(
        filename=str(item.get("filename") or "attachment"),
        content_type=str(item.get("mail_content_type") or "application/octet-stream"),
        content=content,
    )
