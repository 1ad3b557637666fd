"""A pass over testkit.fake_mailbox.FakeMailbox with a real store: the worker's decision paths
in milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime

from poller.config import load_settings
from poller.service.pass_config import PassConfig
from poller.service.pass_result import PassResult
from poller.service.passes import opened_store
from poller.service.reader import Reader
from poller.service.worker import Worker
from poller.store import queries
from poller.store.importer import import_file
from testkit.fake_mailbox import FakeMailbox
from testkit.support import write_settings

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


class Harness:
    """Settings written to a temp dir, the directory imported, a fake mailbox."""

    def __init__(self, tmp_path, reader: Reader | None = None, database_url: str | None = None,
                 **sections: dict[str, str]):
        """DATABASE_URL: the store (default: an SQLite file in tmp_path)."""
        self.tmp_path = tmp_path
        self.reader = reader
        self.database_url = database_url
        self.mailbox = FakeMailbox()
        self.configure(**sections)
        (tmp_path / "organizations.csv").write_text(
            "name,Kaseya Customer ID\nClient One,100\nClient Two,200\n")
        (tmp_path / "devices.csv").write_text(
            "name,organization,Kaseya Device ID\nSRV1,Client One,123\n")
        (tmp_path / "contacts.csv").write_text(
            "organization,first_name,last_name,email,email2,email3\n"
            "Client Two,Jane,Doe,jane@two.example,,\n")
        with opened_store(self.settings) as store:
            for kind in ("organizations", "devices", "contacts"):
                import_file(store, kind, tmp_path / f"{kind}.csv", NOW)

    def configure(self, **sections: dict[str, str]) -> None:
        if self.database_url:
            sections["database"] = {"url": self.database_url, **sections.get("database", {})}
        self.settings_path = write_settings(self.tmp_path, None, **sections)
        self.settings = load_settings(self.settings_path)

    def run(self, result: PassResult | None = None) -> PassResult:
        with opened_store(self.settings) as store:
            return Worker(PassConfig.of(self.settings), self.mailbox, store, clock=lambda: NOW,
                          reader=self.reader).run_pass(result)

    def tickets(self) -> list[dict[str, object]]:
        with opened_store(self.settings) as store:
            return queries.tickets(store.db)

    def messages(self) -> list[dict[str, object]]:
        """The processed-mail log, oldest first."""
        with opened_store(self.settings) as store:
            return queries.messages(store.db)[::-1]

    def outcomes(self) -> list[str]:
        return [m["outcome"] for m in self.messages()]
