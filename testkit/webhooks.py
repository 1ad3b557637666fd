"""A pass over an in-memory mailbox with webhooks on, delivering to a real receiver on 127.0.0.1:
what the webhook tests share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from poller.config import load_settings
from poller.service.delivery import DeliveryRun, deliver_pending
from poller.service.pass_config import PassConfig
from poller.service.pass_result import PassResult
from poller.service.passes import opened_store
from poller.service.worker import Worker
from poller.store import queries
from poller.store.importer import import_file
from testkit.fake_mailbox import FakeMailbox
from testkit.support import write_settings
from testkit.webhook_receiver import Receiver

SECRET = "whsec-Q2x7-never-shown"
ALL_EVENTS = "created, appended, completed"
NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def webhook_section(receiver: Receiver, **keys: str) -> dict[str, str]:
    """Return a [webhook] section posting every event to receiver, with a short timeout."""
    return {"url": receiver.url, "secret": SECRET, "events": ALL_EVENTS, "timeout": "2",
            "initial_wait": "10", "max_wait": "60", **keys}


class HookedBox:
    """Settings in tmp_path with [webhook] pointing at receiver, the directory imported (Client
    One with customer id 100 and device SRV1 = Kaseya Device ID 123), a fake mailbox."""

    def __init__(self, tmp_path: Path, receiver: Receiver, account=None, **sections):
        self.tmp_path = tmp_path
        self.mailbox = FakeMailbox()
        self.config = write_settings(tmp_path, account,
                                     webhook=webhook_section(receiver, **sections.pop("webhook", {})),
                                     **sections)
        self.settings = load_settings(self.config)
        (tmp_path / "organizations.csv").write_text("name,Kaseya Customer ID\nClient One,100\n")
        (tmp_path / "devices.csv").write_text(
            "name,organization,Kaseya Device ID\nSRV1,Client One,123\n")
        with opened_store(self.settings) as store:
            for kind in ("organizations", "devices"):
                import_file(store, kind, tmp_path / f"{kind}.csv", NOW)

    def run(self) -> PassResult:
        with opened_store(self.settings) as store:
            return Worker(PassConfig.of(self.settings), self.mailbox, store, clock=lambda: NOW).run_pass()

    def deliver(self, after: float = 0.0) -> DeliveryRun:
        """Run a delivery as if `after` seconds had gone by since the mail was decided."""
        return deliver_pending(self.settings, clock=lambda: NOW + timedelta(seconds=after))

    def outbox(self, status: str | None = None) -> list[dict[str, object]]:
        """The outbox, oldest first."""
        with opened_store(self.settings) as store:
            return queries.outbox(store.db, status)[::-1]

    def tickets(self) -> list[dict[str, object]]:
        with opened_store(self.settings) as store:
            return queries.tickets(store.db)
