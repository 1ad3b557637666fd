"""Prometheus text-format metrics for node_exporter's textfile collector.

Counters are totals read from the database (pass_log, processed_message), so they are the
same whichever process wrote them (`once` from cron, or `serve`) and survive restarts.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from poller.health import Totals

PREFIX = "ates_poller"


def render(totals: Totals) -> str:
    """Return the metrics as Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str,
               samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {PREFIX}_{name} {help_text}")
        lines.append(f"# TYPE {PREFIX}_{name} {kind}")
        lines.extend(f"{PREFIX}_{name}{labels} {_number(value)}" for labels, value in samples)

    metric("passes_total", "counter", "Passes over the mailbox, by result.",
           [('{result="ok"}', totals.passes_ok), ('{result="failed"}', totals.passes_failed)])
    metric("errors_total", "counter",
           "Passes that failed: mailbox or database unavailable, login or certificate refused.",
           [("", totals.passes_failed)])
    metric("mails_total", "counter", "Mails decided, by outcome.",
           [(f'{{outcome="{name}"}}', count) for name, count in totals.mails.items()])
    metric("open_tickets", "gauge", "Tickets not Complete.", [("", totals.open_tickets)])
    metric("pending_mailbox_steps", "gauge",
           "Mails decided whose flag or move is left for the next pass.",
           [("", totals.pending_steps)])
    last, good = totals.last_pass, totals.last_good_pass
    if last is not None:
        metric("last_pass_duration_seconds", "gauge", "How long the last pass took.",
               [("", last.seconds)])
        metric("last_pass_timestamp_seconds", "gauge", "Unix time the last pass finished.",
               [("", _unix(last.finished))])
    if good is not None:
        metric("last_success_timestamp_seconds", "gauge",
               "Unix time the last good pass finished.", [("", _unix(good.finished))])
    return "\n".join(lines) + "\n"


def write_textfile(path: str | os.PathLike[str], text: str) -> None:
    """Replace PATH with TEXT atomically, so the collector never reads half a file."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unix(moment: datetime) -> float:
    return moment.timestamp()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
