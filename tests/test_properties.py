"""Property-based tests of the extraction path (hypothesis).

* A generated token and alert text, written into a mail in any transfer encoding, charset or
  as escaped HTML, reads back as the same AtesToken and description.
* Any bytes give an Alert or a MessageError, nothing else.
"""

from __future__ import annotations

import dataclasses
import html
from datetime import UTC, datetime
from email import encoders
from email.mime.nonmultipart import MIMENonMultipart
from xml.sax.saxutils import quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poller.ates.alert import read_alert
from poller.ates.decision import DESCRIPTION_LIMIT, TITLE_LIMIT
from poller.ates.token import AtesToken, Sourced
from poller.errors import MessageError
from poller.mail.message import parse_message

NOW = datetime(2030, 1, 1, tzinfo=UTC)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters a mail's text can hold unchanged: letters, digits, punctuation, symbols and
# spaces; no control characters and no line or paragraph separators (those are line breaks).
UNICODE = st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters="\x85")
LATIN1 = st.characters(codec="latin-1", categories=("L", "N", "P", "S", "Zs"))
CYRILLIC = st.sampled_from("абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ "
                           "0123456789.,:;-!?()%")
ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)

# (charset, alphabet, transfer encodings that can carry it)
ENCODINGS = {
    "us-ascii": (ASCII, ("7bit", "quoted-printable", "base64")),
    "utf-8": (UNICODE, ("8bit", "quoted-printable", "base64")),
    "iso-8859-1": (LATIN1, ("8bit", "quoted-printable", "base64")),
    "windows-1252": (LATIN1.filter(lambda c: c.encode("cp1252", "ignore")),
                     ("8bit", "quoted-printable")),
    "koi8-r": (st.one_of(ASCII, CYRILLIC), ("8bit", "base64")),
    "utf-16": (UNICODE, ("base64",)),
}


def value(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A token value: no surrounding whitespace (ATES trims it), never '<autotask'."""
    return (st.text(alphabet, min_size=1, max_size=30).map(str.strip).filter(bool)
            .filter(lambda v: "autotask" not in v.lower()))


@st.composite
def alerts(draw):
    """Return (charset, cte, html?, AtesToken, alert text, token XML)."""
    charset = draw(st.sampled_from(sorted(ENCODINGS)))
    alphabet, ctes = ENCODINGS[charset]
    cte = draw(st.sampled_from(ctes))
    pw = draw(value(ASCII.filter(lambda c: c not in "*")))
    expected = AtesToken(
        pw=pw,
        id=draw(st.none() | value(alphabet)),
        customer=draw(st.none() | value(alphabet)),
        email=draw(st.none() | st.emails().filter(lambda e: len(e) < 60)),
        alert_id=draw(st.none() | st.builds(Sourced, value(ASCII), value(alphabet))),
        device_id=draw(st.none() | st.builds(Sourced, value(ASCII), value(alphabet))),
        ticket_number=draw(st.none() | st.from_regex(r"T20[0-9]{6}\.[0-9]{4}", fullmatch=True)),
    )
    lines = draw(st.lists(st.text(alphabet, max_size=40).filter(lambda t: "<" not in t),
                          min_size=1, max_size=6))
    text = "\n".join(lines)
    return charset, cte, draw(st.booleans()), expected, text, xml_of(expected)


def xml_of(tok: AtesToken) -> str:
    parts = ["<Autotask>", f"<PW name={quoteattr(tok.pw)}/>"]
    for name, field in (("ID", tok.id), ("Customer", tok.customer), ("Email", tok.email)):
        if field is not None:
            parts.append(f"<{name} name={quoteattr(field)}/>")
    for name, field in (("AlertID", tok.alert_id), ("DeviceID", tok.device_id)):
        if field is not None:
            parts.append(f"<{name} source={quoteattr(field.source)} name={quoteattr(field.value)}/>")
    if tok.ticket_number:
        parts.append(f"<TicketNumber>{tok.ticket_number}</TicketNumber>")
    return "\n".join([*parts, "</Autotask>"])


def mail(charset: str, cte: str, subtype: str, body: str) -> bytes:
    part = MIMENonMultipart("text", subtype, charset=charset)
    part["Subject"] = "Property test"
    part["Message-ID"] = "<property@test>"
    part.set_payload(body.replace("\n", "\r\n").encode(charset))
    {"base64": encoders.encode_base64, "quoted-printable": encoders.encode_quopri}.get(
        cte, encoders.encode_7or8bit)(part)
    return part.as_bytes()


def rendered(text: str) -> str:
    """The alert text as a mail client shows the HTML version of it (runs of spaces are one)."""
    return "\n".join(" ".join(line.split()) for line in text.split("\n")).strip()


def as_rendered(tok: AtesToken) -> AtesToken:
    """The token as read from rendered HTML: whitespace in values collapses to one space."""
    changes: dict[str, object] = {}
    for field in dataclasses.fields(tok):
        current = getattr(tok, field.name)
        if isinstance(current, str):
            changes[field.name] = rendered(current)
        elif isinstance(current, Sourced):
            changes[field.name] = Sourced(rendered(current.source), rendered(current.value))
    return dataclasses.replace(tok, **changes)


@PROPERTY
@given(alerts())
def test_encoded_token_reads_back_as_the_same_dataclass(case) -> None:
    charset, cte, as_html, expected, text, xml = case
    if as_html:
        escaped = html.escape(xml).replace("\n", "<br>\n")
        body = f"<html><body>{html.escape(text).replace(chr(10), '<br>')}<br>{escaped}</body></html>"
        raw = mail(charset, cte, "html", body)
    else:
        raw = mail(charset, cte, "plain", f"{text}\n\n{xml}\n")
    alert = read_alert(parse_message(raw), NOW)
    if as_html:
        expected = as_rendered(expected)
    assert alert.token == expected  # the PW too: it is compared, only left out of repr
    if expected.pw not in text:
        assert alert.description == (rendered(text) if as_html else text.strip())


MAIL_LIKE = st.builds(
    lambda headers, body: b"\r\n".join(headers) + b"\r\n\r\n" + body,
    st.lists(st.sampled_from([
        b"Subject: x", b"Content-Type: multipart/mixed; boundary=b", b"Content-Type: text/html",
        b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: quoted-printable",
        b"Content-Type: text/plain; charset=utf-16", b"Content-Type: message/rfc822",
        b"MIME-Version: 1.0", b"Subject: =?utf-8?b?w6k=?=", b"From: \xe9 <a@b>",
    ]), max_size=6),
    st.binary(max_size=2000).map(lambda b: b + b"\r\n--b\r\n<Autotask><PW name='x'/></Autotask>"),
)


@PROPERTY
@given(st.one_of(st.binary(max_size=4000), MAIL_LIKE))
def test_any_bytes_give_a_ticket_ates_accepts_or_a_message_error(raw: bytes) -> None:
    try:
        alert = read_alert(parse_message(raw), NOW)
    except MessageError as exc:
        assert str(exc)  # a reason to record
        return
    assert 0 < len(alert.title) <= TITLE_LIMIT and len(alert.description) <= DESCRIPTION_LIMIT
    assert alert.token.pw not in alert.title and alert.token.pw not in alert.description
