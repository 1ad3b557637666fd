"""Find the <Autotask> token in decoded mail text and read it into an AtesToken.

The token is read with xmltodict (entities disabled). Real alert templates produce tokens that
are not quite XML (typographic quotes, a bare "&" in a value, element names in another case),
so those are repaired first; a token that still does not parse is read element by element
with a small attribute scanner. DTDs and entity declarations are refused outright.
"""

from __future__ import annotations

import html
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from xml.parsers.expat import ExpatError

import xmltodict

from poller.errors import TokenInvalid, TokenMissing
from poller.mail.html import html_to_text
from poller.mail.quoting import quote_start

MAX_TOKEN_CHARS = 64 * 1024

# canonical spelling → how the value is carried
TEXT_ELEMENTS = ("TicketNumber",)
NAME_ELEMENTS = ("ID", "PW", "Customer", "Email", "Contact", "SubIssue")
SOURCED_ELEMENTS = ("CustomerID", "DeviceID", "DeviceGUID", "AlertID", "TicketID")
CANONICAL = {name.lower(): name for name in (*TEXT_ELEMENTS, *NAME_ELEMENTS, *SOURCED_ELEMENTS)}

# Every expression here runs over mail content, so each must be linear in the text's size:
# possessive quantifiers (*+) never give back what they took, and a run that a pattern scans
# ends where the next match attempt could start (at the next "<", "&", "=" or name start), so
# no character is scanned by more than a few attempts. tests/test_linear_regex.py times each
# on 100 KB of adversarial text.
_OPEN_RE = re.compile(r"<\s*+autotask\b", re.IGNORECASE)
_CLOSE_RE = re.compile(r"<\s*+/\s*+autotask\s*+>", re.IGNORECASE)
_DTD_RE = re.compile(r"<!\s*+(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)
_BARE_AMP_RE = re.compile(r"&(?!(?:amp|lt|gt|quot|apos|#\d{1,7}|#x[0-9a-fA-F]{1,6});)")
# typographic quotes around an attribute value (a word processor's "smart quotes"); inside a
# value they are text and stay
_CURLY_ATTR_RE = re.compile(
    r"(=\s*+)(?:[“”„″]([^“”„″\"<>]*+)[“”„″]|[‘’‚]([^‘’‚'<>]*+)[‘’‚])")
_NAMED_ENTITY_RE = re.compile(r"&([A-Za-z_][\w.-]*+);")
_PREDEFINED = frozenset({"amp", "lt", "gt", "quot", "apos"})
# A cited block as mail clients mark what they quote in HTML (type=cite; Gmail's class), and
# the end of any block quote.
_CITE_OPEN_RE = re.compile(
    r"<blockquote\b[^<>]*?\b(?:type\s*+=\s*+[\"']?+cite|class\s*+=\s*+[\"']?+gmail_quote)",
    re.IGNORECASE)
_QUOTE_TAG_RE = re.compile(r"<(/?+)blockquote\b", re.IGNORECASE)
# a tag: its name and everything up to ">" (attributes, and "/" when it closes itself)
_ELEMENT_RE = re.compile(r"<\s*+([A-Za-z][\w.-]*+)([^<>]*+)>")
# an attribute; the look-behind lets a match start only where a name starts, not at every
# character of a long word
_ATTR_RE = re.compile(r"(?<![\w.-])([A-Za-z_][\w.-]*+)\s*+=\s*+(?:\"([^\"]*+)\"|'([^']*+)')")


@dataclass(frozen=True)
class Sourced:
    """A managed-services element: the partner application (source) and its value."""

    source: str
    value: str


@dataclass(frozen=True)
class AtesToken:
    """The fields of one ATES token; absent elements are None. The PW never appears in repr."""

    pw: str = field(repr=False)
    id: str | None = None
    customer: str | None = None
    email: str | None = None
    contact: str | None = None
    sub_issue: str | None = None
    ticket_number: str | None = None
    customer_id: Sourced | None = None
    device_id: Sourced | None = None
    device_guid: Sourced | None = None
    alert_id: Sourced | None = None
    ticket_id: Sourced | None = None

    def public(self) -> dict[str, object]:
        """Return the token as a JSON-ready dict without the PW."""
        out: dict[str, object] = {}
        for name in ("id", "customer", "email", "contact", "sub_issue", "ticket_number"):
            out[name] = getattr(self, name)
        for name in ("customer_id", "device_id", "device_guid", "alert_id", "ticket_id"):
            value = getattr(self, name)
            out[name] = None if value is None else {"source": value.source, "value": value.value}
        return out

    def sources(self) -> set[str]:
        """Return the partner applications the token's managed-services elements name."""
        return {value.source for value in (self.customer_id, self.device_id, self.device_guid,
                                           self.alert_id, self.ticket_id) if value is not None}


@dataclass(frozen=True)
class Located:
    """Where the token sits: its XML text, the body text above it, and how it is quoted when
    it stands where a reply or a forward puts the mail it quotes ('' when it does not)."""

    xml: str
    above: str
    quoted: str = ""


def find_token(text: str, html_body: str) -> tuple[Located, AtesToken]:
    """Return the last token of the first part that holds a readable one, and where it sits.

    The parts are tried in order: the text part, the HTML part's source, the HTML part as a
    mail client shows it (so a token escaped in HTML is found too). A part whose token cannot
    be read does not hide a good one in the next. Raises TokenMissing when no part holds a
    token, else the first part's TokenInvalid.
    """
    problem: TokenInvalid | None = None
    for candidate in _candidates(text, html_body):
        if not candidate or not _OPEN_RE.search(candidate):
            continue
        try:
            start, end = _last_token(candidate)
            token = parse_token(candidate[start:end])
        except TokenInvalid as exc:
            problem = problem or exc
            continue
        above = _above(candidate, start)
        if candidate is html_body:
            above = html_to_text(above)
        quoted = _quoted(candidate, start, above) or _cited(html_body)
        return Located(candidate[start:end], above, quoted), token
    raise problem or TokenMissing("no <Autotask> token in the mail")


def _candidates(text: str, html_body: str) -> Iterator[str]:
    """Yield the parts find_token tries, in order; the HTML part is rendered as text only when
    the first two hold no readable token (rendering costs more than reading a token)."""
    yield text
    yield html_body
    if html_body:
        yield html_to_text(html_body)


def _quoted(text: str, start: int, above: str) -> str:
    """Return how the token at start is quoted in text: in `>` lines, or below what a mail
    client writes above what it forwards or quotes (poller.mail.quoting); '' when it is not.
    A `>` above the token's own line is an alert's text ("threshold > 90"), not a quote."""
    line = text[text.rfind("\n", 0, start) + 1:start]
    if ">" in line and not line.strip(" \t>"):
        return "quoted (> lines)"
    quote = quote_start(above, marks=False)
    return quote.kind if quote else ""


def _cited(markup: str) -> str:
    """Return 'in a cited block' when the last token of the HTML part (as markup, or escaped
    as text) stands inside <blockquote type="cite">, as mail clients quote; else ''."""
    if not markup:
        return ""
    lowered = markup.lower()
    at = max(lowered.rfind("<autotask"), lowered.rfind("&lt;autotask"))
    cite = _last_match(_CITE_OPEN_RE, markup, at) if at >= 0 else None
    if cite is None:
        return ""
    depth = 0
    for tag in _QUOTE_TAG_RE.finditer(markup, cite.start(), at):
        depth += -1 if tag.group(1) else 1
    return "in a cited block (<blockquote type=cite>)" if depth > 0 else ""


def _last_token(text: str) -> tuple[int, int]:
    """Return (start, end) of the last complete token: ATES reads the token at the end of the body.

    That is the last opening tag that a closing tag follows, up to the first closing tag after
    it. Found with forward scans only, so the time stays linear in the mail's size however many
    unclosed or nested tags a sender puts in.
    """
    last_close = _last_match(_CLOSE_RE, text, len(text))
    if last_close is not None:
        tag_end = text.rfind(">", 0, last_close.start())
        opening = _last_match(_OPEN_RE, text, max(tag_end, 0))
        if opening is not None:
            close = _CLOSE_RE.search(text, text.find(">", opening.end()) + 1)
            if close is not None:
                return opening.start(), close.end()
    raise TokenInvalid("the <Autotask> token is not closed by </Autotask>")


def _last_match(pattern: re.Pattern[str], text: str, end: int) -> re.Match[str] | None:
    """Return the last match of pattern in text[:end], or None."""
    last = deque(pattern.finditer(text, 0, end), maxlen=1)
    return last[0] if last else None


def _above(text: str, start: int) -> str:
    """Return the text above the token at start, after any earlier token (or token fragment)."""
    previous = _last_match(_CLOSE_RE, text, start)
    above = text[previous.end() if previous else 0:start]
    earlier = _OPEN_RE.search(above)
    return above[: earlier.start()] if earlier else above


def parse_token(xml: str) -> AtesToken:
    """Read one <Autotask>…</Autotask> fragment; raise TokenInvalid with a readable reason."""
    if len(xml) > MAX_TOKEN_CHARS:
        raise TokenInvalid(f"the token is {len(xml)} characters long (limit {MAX_TOKEN_CHARS})")
    if _DTD_RE.search(xml):
        raise TokenInvalid("the token contains a DTD or entity declaration, which is not allowed")
    for entity in _NAMED_ENTITY_RE.findall(xml):
        if entity not in _PREDEFINED:
            raise TokenInvalid(f"the token uses the undeclared entity &{entity[:40]};")
    repaired = _BARE_AMP_RE.sub("&amp;", _CURLY_ATTR_RE.sub(_straight_quotes, xml))
    try:
        elements = _elements_from_xml(repaired)
    except (ExpatError, ValueError):
        elements = _elements_from_scan(repaired)
    return _build(elements)


def _straight_quotes(match: re.Match[str]) -> str:
    equals, double, single = match.groups()
    return f'{equals}"{double}"' if double is not None else f"{equals}'{single}'"


def _elements_from_xml(xml: str) -> list[tuple[str, dict[str, str]]]:
    tree = xmltodict.parse(xml, disable_entities=True)
    (root,) = tree.values()
    if root is None:
        return []
    if not isinstance(root, dict):
        raise ValueError("token root holds text, not elements")
    elements: list[tuple[str, dict[str, str]]] = []
    for name, value in root.items():
        if name.startswith("@"):
            continue
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                attrs = {}
            elif isinstance(item, str):
                attrs = {"#text": item}
            else:
                attrs = {k: v or "" for k, v in item.items() if isinstance(v, str | None)}
            elements.append((name, attrs))
    return elements


def _elements_from_scan(xml: str) -> list[tuple[str, dict[str, str]]]:
    """Read elements one by one when the token is not well-formed XML.

    An element's text is what stands between it and its closing tag when no other tag comes
    between them, so each stretch of text is read for one element at most.
    """
    elements: list[tuple[str, dict[str, str]]] = []
    for match in _ELEMENT_RE.finditer(xml):
        name, attr_text = match.groups()
        if name.lower() not in CANONICAL:
            continue  # the root, or an extension element that _build would ignore anyway
        attrs = {f"@{m.group(1)}": html.unescape(m.group(2) if m.group(2) is not None
                                                  else m.group(3))
                 for m in _ATTR_RE.finditer(attr_text)}
        if not attr_text.rstrip().endswith("/"):
            text_end = xml.find("<", match.end())
            if text_end >= 0 and closing_tag(name).match(xml, text_end):
                attrs["#text"] = html.unescape(xml[match.end():text_end])
        elements.append((name, attrs))
    return elements


def closing_tag(name: str) -> re.Pattern[str]:
    """Return the pattern of the closing tag of the element called name (any case)."""
    return re.compile(rf"<\s*+/\s*+{re.escape(name)}\s*+>", re.IGNORECASE)


def _build(elements: list[tuple[str, dict[str, str]]]) -> AtesToken:
    values: dict[str, object] = {}
    for raw_name, raw_attrs in elements:
        canonical = CANONICAL.get(raw_name.lower())
        if canonical is None or canonical in values:
            continue  # unknown elements are extensions; a repeated element keeps its first value
        attrs = {k.lower(): v.strip() for k, v in raw_attrs.items()}
        if canonical in TEXT_ELEMENTS:
            value = attrs.get("#text") or attrs.get("@name")
            if value:
                values[canonical] = value
        elif canonical in NAME_ELEMENTS:
            if attrs.get("@name"):
                values[canonical] = attrs["@name"]
        else:
            value, source = attrs.get("@name"), attrs.get("@source")
            if not value:
                continue
            if not source:
                raise TokenInvalid(f"<{canonical}> has no source attribute")
            values[canonical] = Sourced(source=source, value=value)
    pw = values.get("PW")
    if not pw:
        raise TokenInvalid("the token has no <PW name=…/>")
    return AtesToken(
        pw=pw,
        id=values.get("ID"),
        customer=values.get("Customer"),
        email=values.get("Email"),
        contact=values.get("Contact"),
        sub_issue=values.get("SubIssue"),
        ticket_number=values.get("TicketNumber"),
        customer_id=values.get("CustomerID"),
        device_id=values.get("DeviceID"),
        device_guid=values.get("DeviceGUID"),
        alert_id=values.get("AlertID"),
        ticket_id=values.get("TicketID"),
    )
