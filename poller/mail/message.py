"""Raw RFC 822 bytes → ParsedMessage (poller.mail.parsed): decoded subject, text and HTML bodies,
attachments."""

from __future__ import annotations

import base64
import binascii
import email.errors
import email.message
import email.utils
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

import mailparser
from mailparser.exceptions import MailParserError

from poller.errors import MessageError
from poller.mail.headers import Split, longest_parameter_header, split_headers
from poller.mail.mime import mime_tree
from poller.mail.parsed import FORWARDED_TYPES, Attachment, ParsedMessage, utf8

# mail-parser logs every header and part at DEBUG through f-strings; silence it so a
# DEBUG run of the worker stays readable and the hot path does not format those lines.
logging.getLogger("mailparser").setLevel(logging.WARNING)

# A Message-ID as In-Reply-To and References name it, and how many of them a mail keeps.
_MESSAGE_ID_RE = re.compile(r"<[^<>\s]{1,250}+>")
MAX_REFERENCES = 50
# Longer Content-Type and Content-Disposition headers (of any part) are refused; a real one, even
# with a long RFC 2231 filename, is far shorter.
MAX_PARAMETER_HEADER = 8 * 1024
_MISSING = object()


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
        # each header fact once: every lookup parses the header's parameters again
        disposition = part.get_content_disposition()
        filename, params = _filename(part)
        content_type = part.get_content_type()
        maintype, _, subtype = content_type.partition("/")
        if filename is not None or disposition not in (None, "inline") or (
                part.defects and part is not message):
            out.only_text = False
        if maintype == "message" and part is not message:
            out.only_text = False
            # delivery reports and the like carry no text of their own; a forwarded mail that
            # mail-parser does not list (not Content-Disposition: attachment) is kept as one
            if content_type in FORWARDED_TYPES and disposition != "attachment":
                out.forwarded.append(_forward(part, content_type, filename))
            continue
        if part.is_multipart():
            payload = part.get_payload()
            stack.extend(reversed(payload if isinstance(payload, list) else []))
            continue
        if maintype != "text" or subtype not in ("plain", "html"):
            out.only_text = False
            continue
        if disposition != "inline" and (disposition == "attachment" or filename):
            continue
        text = _decoded_text(part, params)
        if text:
            (out.html if subtype == "html" else out.plain).append(text)
    return out


def _filename(part: email.message.Message) -> tuple[str | None, list | None]:
    """Return part.get_filename() and, when it read them, the Content-Type parameters (as
    part.get_params()), so that they are parsed once per part."""
    filename = part.get_param("filename", _MISSING, "content-disposition")
    params = None
    if filename is _MISSING:
        params = part.get_params()
        filename = _param(params, "name")
    if filename is _MISSING:
        return None, params
    return email.utils.collapse_rfc2231_value(filename).strip(), params


def _param(params: list | None, name: str) -> object:
    """Return the parameter called name (any case) as part.get_param(name) does."""
    for key, value in params or ():
        if key.lower() == name:
            return value
    return _MISSING


def _charset(params: list | None) -> str | None:
    """Return part.get_content_charset() from the part's Content-Type parameters."""
    charset = _param(params, "charset")
    if charset is _MISSING:
        return None
    if isinstance(charset, tuple):  # RFC 2231: (charset, language, value)
        try:
            charset = str(charset[2].encode("raw-unicode-escape"), charset[0] or "us-ascii")
        except (LookupError, UnicodeError):
            charset = charset[2]
    try:
        charset.encode("us-ascii")  # a charset's name is ASCII
    except UnicodeError:
        return None
    return charset.lower()


def _decoded_text(part: email.message.Message, params: list | None) -> str:
    """Return a text part's payload after transfer and charset decoding, never raising (params:
    its Content-Type parameters if read already)."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload:
        return ""
    charset = _charset(part.get_params() if params is None else params) or "utf-8"
    try:
        return payload.decode(charset)
    except (LookupError, UnicodeError):
        return payload.decode("utf-8", "replace")


def _forward(part: email.message.Message, content_type: str, filename: str | None) -> Attachment:
    inner = part.get_payload()
    content = b""
    if isinstance(inner, list) and inner:
        try:
            content = inner[0].as_bytes()
        except (email.errors.MessageError, LookupError, ValueError, TypeError):
            content = b""
    return Attachment(filename=str(filename or "forwarded-message.eml"),
                      content_type=content_type, content=content)


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
    """Build the stdlib MIME tree that mail-parser reads from split.header and raw[split.body:]."""
    return mime_tree(split.header, raw, split.body)


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
