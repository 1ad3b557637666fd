"""A store to look at with the web view, and the web view served on a free port of 127.0.0.1.

The store is made the way the worker makes one: passes over a fake mailbox at chosen times, so
that every page and chart has something to show: three client organizations with a device
each, repeated and completed alerts over several days, an alert storm in the current 10-minute
slot, an attachment, a hostile subject, a quarantined mail and events nobody has delivered.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn

from poller.config import load_settings
from poller.service.pass_config import PassConfig
from poller.service.passes import opened_store
from poller.service.worker import Worker
from poller.store.importer import import_file
from poller.store.readonly import open_read_only, read_only_database
from poller.web.app import Access, View, create_app
from testkit.fake_mailbox import FakeMailbox
from testkit.support import alert_mail, token, write_settings

NOW = datetime(2026, 12, 1, 12, 5, tzinfo=UTC)
STORM = 10  # [web] storm_alerts of the store
HOSTILE = '<img src=x onerror="document.title=\'owned\'">Disk <b>full</b>'
CLIENTS = (("Client One", "100", "SRV1", "123"), ("Client Two", "200", "SRV2", "223"),
           ("Client Three", "300", "WS3", "323"))


def _alert(client: int, alert: str, subject: str = "Disk full", **extra) -> bytes:
    _, customer, _, device = CLIENTS[client]
    return alert_mail(subject=subject, tok=token(CustomerID=f"Kaseya:{customer}",
                                                 DeviceID=f"Kaseya:{device}",
                                                 AlertID=f"Kaseya:{alert}"), **extra)


# (when, mails): the passes that fill the store, oldest first
def _passes() -> list[tuple[datetime, list[bytes]]]:
    return [
        (NOW - timedelta(days=5, hours=3), [_alert(0, "A1"), _alert(0, "A1"), _alert(1, "B1"),
                                            _alert(0, "A2", subject="CPU high")]),
        (NOW - timedelta(days=5), [_alert(0, "A2", subject="RESOLVED: CPU high")]),
        (NOW - timedelta(days=2, hours=6), [_alert(1, "B2", subject="Backup failed"),
                                            _alert(1, "B3", subject="Service stopped")]),
        (NOW - timedelta(days=2), [_alert(1, "B3", subject="RESOLVED: Service stopped")]),
        (NOW - timedelta(days=40), [_alert(2, "OLD", subject="Old news")]),  # before 30 days
        (NOW - timedelta(hours=1), [
            _alert(0, "A3", subject=HOSTILE,
                   attachments=(("report.txt", b"x" * 1234, "text/plain"),)),
            alert_mail(subject="Wrong token", tok=token(pw="wrong", AlertID="Kaseya:Q")),
        ]),
        (NOW - timedelta(minutes=3), [_alert(2, f"S{n}", subject=f"Ping lost {n}")
                                      for n in range(STORM + 2)]),
    ]


@dataclass(frozen=True)
class Store:
    config: Path
    database: Path  # the SQLite file (of an SQLite store)
    url: str


def web_store(tmp_path: Path, database_url: str | None = None) -> Store:
    """Make the store described above in tmp_path (or in the database at database_url);
    return its settings file and database."""
    more = {"database": {"url": database_url}} if database_url else {}
    config = write_settings(
        tmp_path, None, web={"storm_alerts": str(STORM)},
        webhook={"url": "http://127.0.0.1:9/never", "secret": "s3cret-never-shown",
                 "events": "created, appended, completed"}, **more)
    settings = load_settings(config)
    (tmp_path / "organizations.csv").write_text(
        "name,Kaseya Customer ID\n" + "".join(f"{c[0]},{c[1]}\n" for c in CLIENTS))
    (tmp_path / "devices.csv").write_text(
        "name,organization,Kaseya Device ID\n" + "".join(f"{c[2]},{c[0]},{c[3]}\n"
                                                         for c in CLIENTS))
    with opened_store(settings) as store:
        for kind in ("organizations", "devices"):
            import_file(store, kind, tmp_path / f"{kind}.csv", NOW - timedelta(days=60))
    mailbox = FakeMailbox()
    for when, mails in sorted(_passes(), key=lambda p: p[0]):
        mailbox.add(*mails)
        with opened_store(settings) as store:
            Worker(PassConfig.of(settings), mailbox, store, clock=lambda w=when: w).run_pass()
    return Store(config, tmp_path / "tickets.db", settings.database.url)


def store_rows(store: Store, query: str, *params) -> list[tuple]:
    """Return the rows of QUERY (`?` placeholders) read from the store, on either engine."""
    with read_only_database(store.url) as db:
        return [tuple(row) for row in db.sql(query, params).fetchall()]


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serving(database: Path | str, access: Access | None = None, now: datetime = NOW,
            storm: int = STORM) -> Iterator[str]:
    """Serve the web view of DATABASE (an SQLite file, or a database URL) on a free port of
    127.0.0.1 at the fixed time NOW; yield its base URL."""
    url = database if isinstance(database, str) else f"sqlite:///{database}"
    view = View(db=open_read_only(url), storm_alerts=storm,
                config="/etc/ates-poller/settings.ini", clock=lambda: now)
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(create_app(view, access or Access()), http="h11",
                                           lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
