"""Prometheus metrics in a textfile, for node_exporter's textfile collector (prometheus_client).

Counters are totals read from the database (pass_log, processed_message), so they are the
same whichever process wrote them (`once` from cron, or `serve`) and survive restarts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, write_to_textfile
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
        yield GaugeMetricFamily(f"{PREFIX}_failing_mailbox_steps",
                                "Mails whose flag or move the server refused when last tried.",
                                value=t.failing_steps)
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


def write_textfile(path: str | os.PathLike[str]) -> None:
    """Replace the textfile at path with the totals of the open database, atomically, so the
    collector never reads half a file."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TotalsCollector(totals()))
    write_to_textfile(str(path), registry)
