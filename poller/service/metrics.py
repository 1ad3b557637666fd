"""Prometheus metrics in a textfile, for node_exporter's textfile collector (prometheus_client).

Counters are totals read from the database (pass_log, processed_message, outbox), so they are
the same whichever process wrote them (`once` from cron, or `serve`) and survive restarts. Every
metric has a `mailbox` label ([imap] name): mailboxes that share a database each write a
textfile of their own, and the collector reads them side by side. The webhook outbox is the
database's, shared by its mailboxes: each textfile shows it whole.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from poller.store import expected
from poller.store.engine import Engine
from poller.store.expected import Window
from poller.store.queries import Totals, totals

PREFIX = "ates_poller"


class TotalsCollector:
    """A collector that reports one snapshot of the database's totals."""

    def __init__(self, snapshot: Totals, mailbox: str):
        self.snapshot = snapshot
        self.mailbox = mailbox

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families (the registry's collector protocol)."""
        t, box = self.snapshot, self.mailbox
        passes = CounterMetricFamily(f"{PREFIX}_passes", "Passes over the mailbox, by result.",
                                     labels=["mailbox", "result"])
        passes.add_metric([box, "ok"], t.passes_ok)
        passes.add_metric([box, "failed"], t.passes_failed)
        yield passes
        yield self._one(CounterMetricFamily, "errors", "Passes that failed: mailbox or database "
                        "unavailable, login or certificate refused.", t.passes_failed)
        mails = CounterMetricFamily(f"{PREFIX}_mails", "Mails decided, by outcome.",
                                    labels=["mailbox", "outcome"])
        for outcome, count in t.mails.items():
            mails.add_metric([box, outcome], count)
        yield mails
        yield self._one(GaugeMetricFamily, "open_tickets",
                        "Tickets the mailbox created that are not Complete.", t.open_tickets)
        yield self._one(GaugeMetricFamily, "pending_mailbox_steps",
                        "Mails decided whose flag or move is left for the next pass.",
                        t.pending_steps)
        yield self._one(GaugeMetricFamily, "failing_mailbox_steps",
                        "Mails whose flag or move the server refused when last tried.",
                        t.failing_steps)
        yield self._one(GaugeMetricFamily, "webhook_undelivered_events",
                        "Ticket events in the outbox not delivered to the webhook yet.",
                        t.undelivered_events)
        yield self._one(GaugeMetricFamily, "webhook_rejected_events",
                        "Ticket events the webhook receiver refused [webhook] max_attempts "
                        "times: no longer tried (poller outbox retry).", t.rejected_events)
        if t.oldest_undelivered is not None:
            yield self._one(GaugeMetricFamily, "webhook_oldest_undelivered_timestamp_seconds",
                            "Unix time the oldest undelivered ticket event happened (its age: "
                            "time() minus this).", t.oldest_undelivered.timestamp())
        if t.last_pass is not None:
            yield self._one(GaugeMetricFamily, "last_pass_duration_seconds",
                            "How long the last pass took.", t.last_pass.seconds)
            yield self._one(GaugeMetricFamily, "last_pass_timestamp_seconds",
                            "Unix time the last pass finished.", t.last_pass.finished.timestamp())
        if t.last_good_pass is not None:
            yield self._one(GaugeMetricFamily, "last_success_timestamp_seconds",
                            "Unix time the last good pass finished.",
                            t.last_good_pass.finished.timestamp())

    def _one(self, family: type[CounterMetricFamily] | type[GaugeMetricFamily], name: str,
             documentation: str, value: float) -> Metric:
        """Return a metric family with the one sample of this mailbox."""
        metric = family(f"{PREFIX}_{name}", documentation, labels=["mailbox"])
        metric.add_metric([self.mailbox], value)
        return metric


class ExpectedCollector:
    """Per [[expect]] entry: its last arrival, its misses, and whether its ticket is open."""

    def __init__(self, windows: list[Window], mailbox: str):
        self.windows = windows
        self.mailbox = mailbox

    def collect(self) -> Iterator[Metric]:
        labels = ["mailbox", "entry"]
        arrival = GaugeMetricFamily(f"{PREFIX}_expected_last_arrival_timestamp_seconds",
                                    "Unix time the expected mail last arrived.", labels=labels)
        misses = CounterMetricFamily(f"{PREFIX}_expected_misses",
                                     "Deadlines by which the expected mail did not arrive.",
                                     labels=labels)
        open_ = GaugeMetricFamily(f"{PREFIX}_expected_open_ticket",
                                  "1 while the ticket of a missed deadline is open.",
                                  labels=labels)
        for window in self.windows:
            key = [self.mailbox, window.name]
            if window.last_arrival is not None:
                arrival.add_metric(key, window.last_arrival.timestamp())
            misses.add_metric(key, window.misses)
            open_.add_metric(key, 1 if window.ticket else 0)
        yield from (arrival, misses, open_)


# node_exporter runs as another user and must read the textfile; it holds only counts and
# times, so it is the one file the program makes readable by others (the umask is 077).
TEXTFILE_MODE = 0o644


_writing = threading.Lock()  # one writer at a time in a process: serve's pass and delivery


def write_textfile(path: str | os.PathLike[str], db: Engine, mailbox: str,
                   expected_names: tuple[str, ...] = ()) -> None:
    """Replace the textfile at path with the totals of one mailbox ([imap] name) in the
    database db, and the state of the [[expect]] entries named, atomically, so the collector
    never reads half a file; the file is readable by others (TEXTFILE_MODE). Each writer has a
    temporary file of its own (a unique name), so two writers, in one process or in two, never
    write into or rename each other's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TotalsCollector(totals(db, mailbox), mailbox))
    if expected_names:
        found = [expected.window(db, name) for name in expected_names]
        registry.register(ExpectedCollector([w for w in found if w is not None], mailbox))
    target = Path(path)
    with _writing:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), TEXTFILE_MODE)  # mkstemp makes it 0600
                handle.write(generate_latest(registry))
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
