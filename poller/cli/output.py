"""What the commands print: log lines (text or JSON), and rows as a table or as JSON.

Nothing a sender (or a server, or a library quoting either) wrote can forge a line or rewrite
the terminal: a text log line's message has its control characters escaped, whoever logged
it; JSON output escapes C0 and C1 controls, line and paragraph separators and bidi controls as
\\uXXXX (json.dumps leaves all but C0 raw with ensure_ascii=False).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from poller.mail.printable import printable

# What JSON output writes as \uXXXX besides what json.dumps escapes: DEL and C1 controls, the
# line and paragraph separators, the bidi marks, embeddings, overrides and isolates.
_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def dumps(value: object, indent: int | None = 2) -> str:
    """Return value as JSON text (UTF-8 kept) with every character that could forge output
    written as a \\uXXXX escape."""
    text = json.dumps(value, indent=indent, ensure_ascii=False, default=str)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class TextFormatter(logging.Formatter):
    """The text log line, its message escaped (a traceback after it keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = printable(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per log line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),  # dumps() escapes what could forge output
        }
        for extra in ("mail", "pass"):  # structured fields of the per-mail and per-pass lines
            if hasattr(record, extra):
                entry[extra] = getattr(record, extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return dumps(entry, indent=None)


def setup_logging(verbosity: int, log_format: str) -> None:
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if verbosity < 2:
        logging.getLogger("imapclient").setLevel(logging.WARNING)
        logging.getLogger("peewee").setLevel(logging.WARNING)
    # The token endpoint's HTTP libraries: their debug lines are no help to an operator, and
    # poller logs what a token request did itself.
    for name in ("msal", "google", "urllib3", "requests"):
        logging.getLogger(name).setLevel(logging.WARNING)


def show(rows: list[dict[str, object]], as_json: bool, columns: tuple[str, ...]) -> None:
    """Print rows as JSON, or as a table of the given columns."""
    print(dumps(rows) if as_json else table(rows, columns))


def table(rows: list[dict[str, object]], columns: tuple[str, ...]) -> str:
    """Return rows as a plain-text table of the given columns ('(none)' when there are none)."""
    if not rows:
        return "(none)"
    cells = [[printable(("-" if row[c] is None else str(row[c])).replace("\n", " "))[:60]
              for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)
