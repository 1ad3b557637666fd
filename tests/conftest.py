"""Shared fixtures: private IMAP servers, each started once for the whole test session.

Integration tests take ``imap_account`` (a fresh, empty mailbox of their own on Dovecot),
``server_account`` (the same on each server in turn: Dovecot, then Cyrus IMAP, for the core
scenarios) or ``dovecot`` / ``cyrus`` (the server itself). When a server is not installed
these fixtures fail with an error; they never skip. OAuth2 tests take
``oauth2_dovecot`` (a Dovecot that also takes XOAUTH2/OAUTHBEARER, with its token server).
Every test that takes one of them is marked ``server`` (``pytest -m "not server"`` leaves them
out).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from poller.service.reader import Reader  # noqa: E402
from testkit.cyrus import Cyrus  # noqa: E402
from testkit.dovecot import Dovecot, ImapAccount  # noqa: E402
from testkit.dovecot_oauth2 import OAuth2Dovecot  # noqa: E402
from testkit.harness import Harness  # noqa: E402
from testkit.imapserver import ImapServer  # noqa: E402
from testkit.postgres import Postgres  # noqa: E402
from testkit.webhook_receiver import Receiver  # noqa: E402
from testkit.webhooks import SECRET  # noqa: E402

SERVERS = ("dovecot", "cyrus")
ENGINES = ("sqlite", "postgresql")
# The fixtures that start a live IMAP server or PostgreSQL; a test that takes one (or a fixture
# built on one, or database_url's PostgreSQL) is marked `server`, so that
# `pytest -m "not server"` runs the rest.
SERVER_FIXTURES = {"dovecot", "cyrus", "imap_server", "oauth2_server", "postgres"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())) or \
                params.get("database_url") == "postgresql":
            item.add_marker(pytest.mark.server)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """The session's running Dovecot; stopped and removed at session end.

    A test that stops the server must start it again (``restart()`` does both).
    """
    server = Dovecot()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def cyrus() -> Iterator[Cyrus]:
    """The session's running Cyrus IMAP (Debian's stock namespace: INBOX., '.')."""
    server = Cyrus()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def imap_account(dovecot: Dovecot) -> ImapAccount:
    """A new user on the session's Dovecot, with an empty INBOX of its own."""
    dovecot.start()  # no-op unless an earlier test left it stopped
    return dovecot.account()


@pytest.fixture(scope="session")
def reader() -> Iterator[Reader]:
    """One reading helper for the session's passes over the fake mailbox, as `serve` keeps
    one across passes (a test that kills it gets a new one started by the next pass)."""
    with Reader() as shared:
        yield shared


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The session's private PostgreSQL (started when first asked for; a missing server is an
    error, never a skip)."""
    server = Postgres()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty store on each engine in turn: an SQLite file in tmp_path, then a
    database of its own on the session's PostgreSQL (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/tickets.db"
        return
    server: Postgres = request.getfixturevalue("postgres")
    with server.scratch_database() as url:
        yield url


@pytest.fixture
def pg_url(postgres: Postgres) -> Iterator[str]:
    """The URL of a new, empty database of its own on the session's PostgreSQL (dropped
    afterwards), for tests of what only PostgreSQL does."""
    with postgres.scratch_database() as url:
        yield url


@pytest.fixture
def box(tmp_path, reader: Reader, database_url: str) -> Harness:
    """A pass over testkit.fake_mailbox with a real store (on each engine in turn), the
    directory imported."""
    return Harness(tmp_path, reader, database_url)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 that checks signatures with testkit.webhooks.SECRET."""
    with Receiver(SECRET) as running:
        yield running


@pytest.fixture(params=SERVERS)
def imap_server(request: pytest.FixtureRequest) -> ImapServer:
    """Each of the session's servers in turn (started when first asked for)."""
    server: ImapServer = request.getfixturevalue(request.param)
    server.start()  # no-op unless an earlier test left it stopped
    return server


@pytest.fixture
def server_account(imap_server: ImapServer) -> ImapAccount:
    """A new user with an empty INBOX, on each of the session's servers in turn."""
    return imap_server.account()


@pytest.fixture(scope="session")
def oauth2_server() -> Iterator[OAuth2Dovecot]:
    """A second private Dovecot, one that also takes XOAUTH2 and OAUTHBEARER, with the local
    token server its tokens come from (``oauth2_server.tokens``)."""
    server = OAuth2Dovecot()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def oauth2_dovecot(oauth2_server: OAuth2Dovecot) -> OAuth2Dovecot:
    """The session's OAuth2 Dovecot, running, its token server back to the defaults."""
    oauth2_server.start()
    oauth2_server.tokens.reset()
    return oauth2_server
