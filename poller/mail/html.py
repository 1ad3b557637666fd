"""HTML → plain text, well enough to find an escaped token and the text above it.

Every expression here runs over mail content, so each is linear in the markup's size whatever
tags a sender repeats.
"""

from __future__ import annotations

import html
import re

_BR_RE = re.compile(r"<\s*+br\s*+/?+\s*+>|<\s*+/\s*+(?:p|div|tr|li|h[1-6])\s*+>", re.IGNORECASE)
_INVISIBLE_RE = re.compile(r"<\s*+(head|style|script|title)\b", re.IGNORECASE)
_INVISIBLE_CLOSE = {name: re.compile(rf"<\s*+/\s*+{name}\s*+>", re.IGNORECASE)
                    for name in ("head", "style", "script", "title")}
_SPACE_RE = re.compile(r"\s+")
_TAG_RE = re.compile(r"<[^<>]*+>")


def html_to_text(markup: str) -> str:
    """Return the text a mail client shows of markup: `<br>` and block ends become line breaks,
    tags and invisible elements go, entities are unescaped, lines are stripped."""
    text = _drop_invisible(markup)
    text = _SPACE_RE.sub(" ", text)  # source line breaks are spaces in HTML; <br> is the break
    text = _BR_RE.sub("\n", text)
    text = _TAG_RE.sub("", text)
    lines = (line.strip() for line in html.unescape(text).replace("\xa0", " ").split("\n"))
    return "\n".join(lines)


def _drop_invisible(markup: str) -> str:
    """Remove <head>, <style>, <script> and <title> elements, which a mail client does not show.

    Linear in the markup: once an element has no closing tag left, its later openings are
    not searched again (a lazy regex would rescan the rest of the mail for each of them).
    """
    pieces: list[str] = []
    position, unclosed = 0, set()
    while match := _INVISIBLE_RE.search(markup, position):
        name = match.group(1).lower()
        close = None if name in unclosed else _INVISIBLE_CLOSE[name].search(markup, match.end())
        if close is None:
            unclosed.add(name)
            pieces.append(markup[position:match.end()])
        else:
            pieces.append(markup[position:match.start()])
        position = close.end() if close else match.end()
    pieces.append(markup[position:])
    return "".join(pieces)
