"""The token cache in front of a provider, the SASL exchanges, and which login failures are
transient; without a server (the real exchanges: test_oauth2.py)."""

from __future__ import annotations

import threading

import pytest
from imapclient.exceptions import LoginError

from poller.config import ImapSettings
from poller.config.oauth2 import OAuth2Settings
from poller.errors import MailboxAuthError, MailboxUnavailable
from poller.imap.mailbox import translated
from poller.imap.oauth2 import Tokens, _Sasl
from poller.imap.token_providers import Grant

SETTINGS = ImapSettings(host="imap.example", username="helpdesk@example.test", password="",
                        auth="xoauth2", oauth2=OAuth2Settings(
                            provider="generic", credential="s", client_id="c", scope="imap",
                            token_url="https://idp.example/token"))


class CountingProvider:
    """Hands out token-1, token-2, ... each valid for LIFETIME seconds."""

    def __init__(self, lifetime: float = 3600.0):
        self.lifetime = lifetime
        self.fetches = 0
        self.lock = threading.Lock()

    def fetch(self) -> Grant:
        with self.lock:
            self.fetches += 1
            return Grant(f"token-{self.fetches}", self.lifetime)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("lifetime", "kept"), [(3600, 3300), (60, 30), (1, 0.5)])
def test_a_token_is_kept_until_shortly_before_it_expires(lifetime, kept):
    clock, provider = Clock(), CountingProvider(lifetime)
    tokens = Tokens(SETTINGS, provider, clock)
    assert tokens.get() == "token-1"
    clock.now += kept - 0.01
    assert tokens.get() == "token-1"
    assert tokens.valid_for() == pytest.approx(lifetime - kept + 0.01)
    clock.now += 0.01  # 5 minutes before expiry, at most half the lifetime
    assert tokens.get() == "token-2"
    assert provider.fetches == 2


def test_a_dropped_token_is_replaced_but_a_newer_one_is_kept():
    provider = CountingProvider()
    tokens = Tokens(SETTINGS, provider, Clock())
    first = tokens.get()
    tokens.drop(first)
    second = tokens.get()
    assert (first, second) == ("token-1", "token-2")
    tokens.drop(first)  # another connection refused the old one: the new one stays
    assert tokens.get() == "token-2" and provider.fetches == 2


def test_connections_asking_at_once_share_one_fetch():
    provider = CountingProvider()
    tokens = Tokens(SETTINGS, provider)
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(tokens.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == ["token-1"] * 8 and provider.fetches == 1


def test_a_failed_fetch_caches_nothing():
    class Failing(CountingProvider):
        def fetch(self) -> Grant:
            self.fetches += 1
            raise MailboxUnavailable("token endpoint down")

    provider = Failing()
    tokens = Tokens(SETTINGS, provider, Clock())
    for _ in range(2):
        with pytest.raises(MailboxUnavailable):
            tokens.get()
    assert provider.fetches == 2 and tokens.valid_for() == 0


def test_xoauth2_sends_user_and_bearer_then_an_empty_answer_to_an_error_challenge():
    sasl = _Sasl("XOAUTH2", "helpdesk@example.test", "tok")
    assert sasl(b"") == b"user=helpdesk@example.test\x01auth=Bearer tok\x01\x01"
    assert sasl(b'{"status":"401","schemes":"bearer","scope":"mail"}') == b""
    assert sasl.challenge == '{"status":"401","schemes":"bearer","scope":"mail"}'


def test_oauthbearer_sends_a_gs2_header_with_the_user_escaped():
    sasl = _Sasl("OAUTHBEARER", "a=b,c@example.test", "tok")
    assert sasl(b"") == b"n,a=a=3Db=2Cc@example.test,\x01auth=Bearer tok\x01\x01"
    assert sasl(b'{"status":"invalid_token"}') == b"\x01"  # RFC 7628 3.2.3


def test_a_login_the_server_cannot_check_now_is_transient():
    with pytest.raises(MailboxUnavailable, match="cannot check logins right now"):
        with translated("logging in"):
            raise LoginError("[UNAVAILABLE] Temporary authentication failure. [host:2026-11-29]")
    with pytest.raises(MailboxAuthError):
        with translated("logging in"):
            raise LoginError("[AUTHENTICATIONFAILED] Authentication failed.")
