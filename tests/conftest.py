"""Shared fixtures: one private Dovecot IMAP server for the whole test session.

Integration tests take ``imap_account`` (a fresh, empty mailbox of their own)
or ``dovecot`` (the server itself).  When dovecot is not installed these
fixtures fail with an error; they never skip.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from testkit.dovecot import Dovecot, ImapAccount  # noqa: E402
from testkit.webhook_receiver import Receiver  # noqa: E402
from testkit.webhooks import SECRET  # noqa: E402


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


@pytest.fixture
def imap_account(dovecot: Dovecot) -> ImapAccount:
    """A new user on the session's Dovecot, with an empty INBOX of its own."""
    dovecot.start()  # no-op unless an earlier test left it stopped
    return dovecot.account()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 that checks signatures with testkit.webhooks.SECRET."""
    with Receiver(SECRET) as running:
        yield running
