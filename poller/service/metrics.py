"""Prometheus metrics in a textfile, for node_exporter's textfile collector (prometheus_client).

Counters are totals read from the database (pass_log, processed_message), so they are the
same whichever process wrote them (`once` from cron, or `serve`) and survive restarts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from poller.store.queries import Totals, totals

PREFIX = "ates_poller"


class TotalsCollector:
    """A collector that reports one snapshot of the database's totals."""

    def __init__(self, snapshot: Totals):
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families (the registry's collector protocol)."""
        t = self.snapshot
        passes = CounterMetricFamily(f"{PREFIX}_passes", "Passes over the mailbox, by result.",
                                     labels=["result"])
        passes.add_metric(["ok"], t.passes_ok)
        passes.add_metric(["failed"], t.passes_failed)
        yield passes
        yield CounterMetricFamily(
            f"{PREFIX}_errors",
            "Passes that failed: mailbox or database unavailable, login or certificate refused.",
            value=t.passes_failed)
        mails = CounterMetricFamily(f"{PREFIX}_mails", "Mails decided, by outcome.",
                                    labels=["outcome"])
        for outcome, count in t.mails.items():
            mails.add_metric([outcome], count)
        yield mails
        yield GaugeMetricFamily(f"{PREFIX}_open_tickets", "Tickets not Complete.",
                                value=t.open_tickets)
        yield GaugeMetricFamily(f"{PREFIX}_pending_mailbox_steps",
                                "Mails decided whose flag or move is left for the next pass.",
                                value=t.pending_steps)
        if t.last_pass is not None:
            yield GaugeMetricFamily(f"{PREFIX}_last_pass_duration_seconds",
                                    "How long the last pass took.", value=t.last_pass.seconds)
            yield GaugeMetricFamily(f"{PREFIX}_last_pass_timestamp_seconds",
                                    "Unix time the last pass finished.",
                                    value=t.last_pass.finished.timestamp())
        if t.last_good_pass is not None:
            yield GaugeMetricFamily(f"{PREFIX}_last_success_timestamp_seconds",
                                    "Unix time the last good pass finished.",
                                    value=t.last_good_pass.finished.timestamp())


# node_exporter runs as another user and must read the textfile; it holds only counts and
# times, so it is the one file the program makes readable by others (the umask is 077).
TEXTFILE_MODE = 0o644


def write_textfile(path: str | os.PathLike[str]) -> None:
    """Replace the textfile at path with the totals of the open database, atomically, so the
    collector never reads half a file; the file is readable by others (TEXTFILE_MODE)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TotalsCollector(totals()))
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, TEXTFILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), TEXTFILE_MODE)  # the mode given to open is cut by the umask
            handle.write(generate_latest(registry))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
