"""Authentication-Results headers (RFC 8601): what the receiving service found of a mail's
sender. Pure, and linear in the header's size: comments and quoted strings are skipped in one
pass, the rest is split on ';' and whitespace.

A receiving service (Google) removes headers that carry its own authserv-id from incoming
mail, so a header with that id was written by it, not by the sender. Microsoft 365 writes its
header without an authserv-id (it starts "spf=…"): for it the id is configured as "none", and
only the topmost Authentication-Results header counts, the one the receiving service adds
above whatever the sender wrote.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass, field

MAX_HEADERS = 20  # Authentication-Results headers of one mail that are read
MAX_CHARS = 8 * 1024  # of each
NO_ID = "none"  # the authserv-id of a receiving service that writes none (Microsoft 365)


@dataclass(frozen=True)
class Result:
    """One method's result: dkim=pass header.d=example.com → ('dkim', 'pass', {'header.d': …})."""

    method: str
    result: str
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Header:
    authserv_id: str
    results: tuple[Result, ...]


def parse(value: str) -> Header:
    """Return the authserv-id and the results of one Authentication-Results header value; the
    id is '' when the header starts with a result (as Microsoft 365 writes it)."""
    parts = _without_comments(value[:MAX_CHARS]).split(";")
    head = parts[0].split()
    if head and "=" in head[0]:
        head, parts = [], ["", *parts]
    results = []
    for part in parts[1:]:
        words = part.split()
        if not words or "=" not in words[0]:
            continue  # "none", or not a result
        method, _, result = words[0].partition("=")
        properties = {}
        for word in words[1:]:
            key, sep, prop = word.partition("=")
            if sep and key.lower() not in properties:
                properties[key.lower()] = prop.strip('"')
        results.append(Result(method.split("/")[0].lower(), result.lower(), properties))
    return Header(head[0].lower() if head else "", tuple(results))


def sender_domain(sender: str) -> str:
    """Return the domain of the From address, lower case ('' when it has none)."""
    address = email.utils.parseaddr(sender)[1]
    return address.rpartition("@")[2].strip().rstrip(".").lower() if "@" in address else ""


def authenticated(headers: tuple[str, ...], authserv_id: str, domain: str) -> str | None:
    """Return None when a header of authserv_id says the mail is from domain (dmarc=pass for
    it, or dkim=pass with header.d equal to it), else why not. authserv_id 'none': the topmost
    header, when it has no authserv-id."""
    if not domain:
        return "the From address has no domain"
    domain = domain.lower()
    wanted = authserv_id.lower()
    if wanted == NO_ID:
        ours = [header for header in map(parse, headers[:1]) if not header.authserv_id]
    else:
        ours = [header for header in map(parse, headers[:MAX_HEADERS])
                if header.authserv_id == wanted]
    if not ours:
        if wanted == NO_ID:
            return "the topmost Authentication-Results header is missing or has an authserv-id"
        return f"no Authentication-Results header of {authserv_id}"
    for header in ours:
        for result in header.results:
            if result.result != "pass":
                continue
            if result.method == "dmarc" and result.properties.get(
                    "header.from", domain).lower() == domain:
                return None
            if result.method == "dkim" and result.properties.get("header.d", "").lower() == domain:
                return None
    return (f"the Authentication-Results of {authserv_id} show neither dmarc=pass nor dkim=pass "
            f"(header.d) for {domain}")


def _without_comments(text: str) -> str:
    """Return text without (comments), nested or not; a quoted string is kept as it is, its
    ';' made a space so that it does not end a result."""
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\":
            escaped = True
            continue
        if quoted:
            out.append(" " if char == ";" else char)
            quoted = char != '"'
        elif char == '"' and depth == 0:
            quoted = True
            out.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)
