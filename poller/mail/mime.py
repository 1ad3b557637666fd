"""Raw mail → the standard library's MIME tree (compat32), built with less of its line-by-line
machinery for the usual shapes of mail, and the same tree it builds.

email.feedparser hands every line of a mail through a stack of generators, and compiles a
regular expression for each multipart boundary (re's cache does not help: every mail has
boundaries of its own); for a small multipart alert that is most of reading it. So here:

* a header block whose lines are all header fields (a name, a colon) or their continuations
  becomes a Message with those fields, each set as the parser sets it (the policy's
  header_source_parse, then set_raw), in order;
* a body that is one part (not multipart/*, not message/*) is the rest of the mail as it
  stands, which is what the parser makes of it too;
* a multipart body whose parts are all single parts, with a start and a close boundary line,
  is cut at its boundary lines by the rules email.feedparser applies (RFC 2046: the line
  break before a boundary line belongs to it; a boundary line may end in spaces or tabs);
  each part is split at its first blank line in the same way;
* everything else (message/*, multipart/digest, nested multiparts, missing, repeated or
  unusual boundaries, a header block with a line that is not a field, large mail) is handed
  to the standard parser: the whole mail, or the part.

tests/test_mime.py checks that the tree is the standard parser's for real, hostile and
mangled mail.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import io
import itertools
import re

FEED_CHUNK = 64 * 1024
# Larger multipart bodies go to the standard parser, which takes them a chunk at a time: cut
# here, a body is held as one string, its lines and its parts at once.
MAX_CUT_BODY = 1024 * 1024
POLICY = email.policy.compat32
# What email.feedparser accepts after "--" and the boundary on a boundary line (its pattern,
# with possessive quantifiers where giving back cannot make it match: the rest is all spaces,
# tabs and line breaks). It is matched at the start of that rest; the look-behind only keeps
# a search linear (a match cannot start inside a run of blanks).
_BOUNDARY_END_RE = re.compile(r"(?<![ \t])(?P<end>--)?+[ \t]*+(?P<linesep>\r\n|\r|\n)?+$")
# The first line of a header field as email.feedparser reads it: a name of printable ASCII
# characters but the colon, then the colon (matched at a line's start; the look-behind only
# keeps a search linear).
_FIELD_RE = re.compile(r"(?<![!-9;-~])[!-9;-~]++:")
_SINGLE_PART_TYPES = ("multipart", "message")
_BLANK_LINES = frozenset(("\n", "\r\n", "\r"))


def mime_tree(header: bytes, raw: bytes, body: int) -> email.message.Message:
    """Return the tree email.parser makes of header + raw[body:] (compat32 policy): raw's
    header block as header (the lines to parse), its body from offset body on."""
    tree = _cut(header, raw, body)
    return tree if tree is not None else _standard(header, raw, body)


def _standard(header: bytes, raw: bytes, body: int) -> email.message.Message:
    """The standard parser on the whole mail, fed in chunks: handing it all at once (as
    mailparser.parse_from_bytes does) first copies it into one string and then into one
    string per line, which costs eight times the mail's size at its peak; chunks keep it
    near three."""
    feeder = email.parser.BytesFeedParser(policy=POLICY)
    feeder.feed(header)
    for start in range(body, len(raw), FEED_CHUNK):
        feeder.feed(raw[start:start + FEED_CHUNK])
    return feeder.close()


def _cut(header: bytes, raw: bytes, body: int) -> email.message.Message | None:
    """Return the tree built part by part, or None when the mail is not of a shape done here."""
    if not header:
        return None
    blank = 4 if raw.startswith(b"\r\n\r\n", body) else 2 if raw.startswith(b"\n\n", body) else 0
    if not blank:
        return None
    # the header lines with the line break that ends the last one; the blank line follows
    top = _fields(io.StringIO((header + raw[body:body + blank // 2]).decode(
        "ascii", "surrogateescape"), newline="").readlines())
    if top is None:
        return None
    maintype = top.get_content_maintype()
    if maintype not in _SINGLE_PART_TYPES:
        top.set_payload(raw[body + blank:].decode("ascii", "surrogateescape"))
        return top
    if maintype != "multipart" or len(raw) - body > MAX_CUT_BODY:
        return None
    return _multipart(top, raw[body + blank:].decode("ascii", "surrogateescape"))


def _multipart(top: email.message.Message, text: str) -> email.message.Message | None:
    """Give top (a multipart whose header block is parsed) the parts of its body text."""
    boundary = top.get_boundary()
    if boundary is None or top.get_content_type() == "multipart/digest" or str(
            top.get("content-transfer-encoding", "8bit")).lower() not in ("7bit", "8bit",
                                                                           "binary"):
        return None
    separator = "--" + boundary
    # split as email.feedparser splits: at CRLF, CR and LF only
    lines = io.StringIO(text, newline="").readlines()
    marks: list[int] = []  # the indexes of the boundary lines
    closed = False
    for index in [index for index, line in enumerate(lines) if line.startswith(separator)]:
        match = _BOUNDARY_END_RE.match(lines[index][len(separator):])
        if match is not None:
            if closed or (marks and marks[-1] == index - 1):
                return None  # a boundary line after the close one, or an empty part
            marks.append(index)
            closed = match["end"] is not None
    if len(marks) < 2 or not closed:
        return None  # no start or no close boundary line
    parts = []
    for start, end in itertools.pairwise(marks):
        part = _part(lines, start + 1, end)
        if part is None:
            return None
        parts.append(part)
    first, last = marks[0], marks[-1]
    if first:
        top.preamble = _without_line_break("".join(lines[:first]))
    top.epilogue = "".join(lines[last + 1:])
    top.set_payload(parts)
    return top


def _part(lines: list[str], first: int, end: int) -> email.message.Message | None:
    """Return the part made of lines[first:end], or None when it is not a single part.

    As for the whole mail, its header block (up to the first blank line) is read field by
    field and the rest is its body; a part with no blank line, or with a line in its header
    block that is not a field, is parsed by the standard library.
    """
    blank = next((index for index in range(first, end) if lines[index] in _BLANK_LINES), None)
    if blank is not None:
        part = _fields(lines[first:blank])
        if part is not None:
            if part.get_content_maintype() in _SINGLE_PART_TYPES:
                return None
            part.set_payload(_without_line_break("".join(lines[blank + 1:end])))
            return part
    return _leaf(_without_line_break("".join(lines[first:end])))


def _fields(lines: list[str]) -> email.message.Message | None:
    """Return a message with the header fields of lines, as email.feedparser sets them when a
    blank line follows; None when a line is not a header field or its continuation (a line
    that is not a header, an envelope "From " line, a continuation first, a field without a
    name), which the parser reads by rules of its own."""
    message = email.message.Message(policy=POLICY)
    field: list[str] = []
    for line in lines:
        if field and line[0] in " \t":
            field.append(line)
            continue
        if _FIELD_RE.match(line) is None:  # an envelope "From " line too
            return None
        if field:
            message.set_raw(*POLICY.header_source_parse(field))
        field = [line]
    if field:
        message.set_raw(*POLICY.header_source_parse(field))
    return message


def _leaf(text: str) -> email.message.Message | None:
    """Return the part parsed from text, or None when it is not a single part."""
    parser = email.parser.FeedParser(policy=POLICY)
    parser.feed(text)
    part = parser.close()
    return None if part.get_content_maintype() in _SINGLE_PART_TYPES else part


def _without_line_break(text: str) -> str:
    """Return text less its final line break (CRLF, CR or LF), which belongs to the boundary
    line after it."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith(("\r", "\n")) else text
