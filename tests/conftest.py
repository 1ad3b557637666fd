"""Shared fixtures: one private Dovecot IMAP server for the whole test session.

Integration tests take ``imap_account`` (a fresh, empty mailbox of their own)
or ``dovecot`` (the server itself); OAuth2 tests ``oauth2_dovecot`` (a Dovecot that takes
XOAUTH2/OAUTHBEARER, with its token server).  When dovecot is not installed these
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
from testkit.dovecot_oauth2 import OAuth2Dovecot  # noqa: E402


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
