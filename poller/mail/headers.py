"""The header block of a raw mail, split into what the MIME parser is to see and what is read
here directly.

mail-parser analyses every header it is given (trace hops, addresses, dates), which for a
typical alert costs more than reading its body and token. So it is given only the headers it
is read for (Message-ID, Subject, MIME-Version, Content-*); From, Date, In-Reply-To and
References are taken from the raw header block here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# a header name at the start of a line (the look-behind keeps a search linear too)
_HEADER_NAME_RE = re.compile(rb"(?<![!-9;-~])([!-9;-~]++):")
_PARSED_HEADERS = frozenset((b"message-id", b"subject", b"mime-version"))
_PLUCKED_HEADERS = frozenset((b"from", b"date", b"in-reply-to", b"references"))
# Read every time it appears, up to a number (the first ones: a receiving service adds its own
# on top).
_GATHERED_HEADER = b"authentication-results"
MAX_GATHERED = 20
_FOLDS = (b" ", b"\t")  # what a folded line starts with


# The start of a Content-Type or Content-Disposition header line (of the mail or of a part), and
# the end of a header: a line break not followed by a folded line's space or tab.
_PARAMETER_HEADER_RE = re.compile(rb"(?im)^content-(?:type|disposition)[ \t]*+:")
_HEADER_END_RE = re.compile(rb"\n(?![ \t])")


def longest_parameter_header(raw: bytes) -> int:
    """Return the length in bytes of the longest Content-Type or Content-Disposition header in
    raw, folded lines included (0 when there is none). Linear: each header is measured from
    its start to its end once."""
    longest = 0
    for match in _PARAMETER_HEADER_RE.finditer(raw):
        end = _HEADER_END_RE.search(raw, match.end())
        longest = max(longest, (end.start() if end else len(raw)) - match.start())
    return longest


@dataclass(frozen=True)
class Split:
    """What mail-parser is to see of raw (`header` followed by raw[body:]), the first From,
    Date, In-Reply-To and References (unfolded; '' when absent), every Authentication-Results
    (up to MAX_GATHERED), and how many header fields raw had before its body.

    The body is given as an offset, not as bytes, so that a large mail is not copied.
    """

    header: bytes
    body: int
    sender: str
    date: str | None
    fields: int
    in_reply_to: str = ""
    references: str = ""
    auth_results: tuple[str, ...] = ()


def split_headers(raw: bytes) -> Split:
    """Split raw as above. From the first line that is not a header on, everything is kept as
    it is, so a malformed mail reaches mail-parser unchanged."""
    ends = [end for end in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if end >= 0]
    if not ends:
        return Split(b"", 0, "", None, 0)
    end = min(ends)
    lines = raw[:end].split(b"\n")
    kept: list[bytes] = []
    plucked: dict[bytes, list[bytes]] = {}
    gathered: list[list[bytes]] = []
    keep, pluck, fields = False, None, 0
    match_name = _HEADER_NAME_RE.match
    for index, line in enumerate(lines):
        if line[:1] in _FOLDS:
            if keep:
                kept.append(line)
            elif pluck is not None:
                pluck.append(line)
            continue
        match = match_name(line)
        if match is None:
            if index == 0 and line.startswith(b"From "):
                kept.append(line)  # an mbox separator, which the parser skips
                continue
            kept.extend(lines[index:])
            break
        fields += 1
        name = match[1].lower()
        keep = name in _PARSED_HEADERS or name.startswith(b"content-")
        pluck = None
        if keep:
            kept.append(line)
        elif name in _PLUCKED_HEADERS and name not in plucked:
            pluck = plucked[name] = [line[match.end():]]
        elif name == _GATHERED_HEADER and len(gathered) < MAX_GATHERED:
            pluck = [line[match.end():]]
            gathered.append(pluck)
    values = {name: _unfolded(parts) for name, parts in plucked.items()}
    if not kept:
        header, body = b"", raw.index(b"\n", end) + 1
    else:
        # The last kept line may have lost its LF to the split; raw[end:] brings the line end.
        header, body = b"\n".join(kept).removesuffix(b"\r"), end
    return Split(header, body, values.get(b"from", ""), values.get(b"date"), fields,
                 values.get(b"in-reply-to", ""), values.get(b"references", ""),
                 tuple(_unfolded(parts) for parts in gathered))


def _unfolded(parts: list[bytes]) -> str:
    return " ".join(b" ".join(parts).decode("utf-8", "replace").split())
