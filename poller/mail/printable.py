"""Text shown in a log line or on a terminal, whatever a mail put in it."""

from __future__ import annotations

import unicodedata


def printable(text: str, keep: str = "") -> str:
    """Return text fit for one log line or a terminal: characters that do not print (control
    characters such as ESC or CR, line breaks, bidi overrides) are written as escapes (\\x1b);
    keep names characters to leave as they are ("\\n" for a text of several lines)."""
    if text.isprintable():
        return text
    return "".join(c if c in keep or not _hidden(c) else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _hidden(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] == "C" or category in ("Zl", "Zp")
