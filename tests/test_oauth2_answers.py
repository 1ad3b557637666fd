"""What a token endpoint answers cannot hold a pass or be taken for what it is not: every token
request ends within [imap] timeout (a second more) whatever the endpoint sends; a redirect is
refused and named; 429 and answers that are not JSON are transient for every provider;
expires_in is believed only when finite and from a minute to a day. The local token server
on 127.0.0.1, over HTTPS."""

from __future__ import annotations

import json
import logging
import time

import pytest

from poller.config import load_settings
from poller.errors import MailboxAuthError, MailboxUnavailable
from poller.imap import token_providers
from poller.imap.oauth2 import Tokens
from poller.imap.token_providers import DEFAULT_LIFETIME, make_provider
from testkit.support import oauth2_settings
from testkit.token_server import client_certificate

PAGE = (b"<html><body><h1>502 Bad Gateway</h1>" + b"x" * 100 + b"</body></html>")


def imap_settings(tmp_path, server, provider: str = "generic", timeout: str = "2"):
    account = server.account()
    oauth2: dict[str, str | None] = {}
    if provider == "microsoft":
        pem, certificate = client_certificate()
        (tmp_path / "app.pem").write_text(pem, encoding="utf-8")
        (tmp_path / "app.pem").chmod(0o600)
        oauth2 = {"provider": "microsoft", "authority": server.tokens.authority,
                  "token_url": None, "scope": None, "client_secret_file": None,
                  "client_certificate_file": "app.pem",
                  "client_id": server.tokens.add_client(account.username,
                                                        certificate=certificate)}
    elif provider == "google":
        key_file = tmp_path / "service-account.json"
        key_file.write_text(json.dumps(server.tokens.add_service_account(account.username)))
        key_file.chmod(0o600)
        oauth2 = {"provider": "google", "service_account_file": str(key_file), "client_id": None,
                  "client_secret_file": None, "token_url": None, "scope": None}
    config = oauth2_settings(tmp_path, account, server, imap={"timeout": timeout}, oauth2=oauth2)
    return load_settings(config).imap


def test_a_trickling_token_endpoint_is_given_up_on_in_time(tmp_path, oauth2_dovecot):
    settings = imap_settings(tmp_path, oauth2_dovecot, timeout="1")
    oauth2_dovecot.tokens.trickle = True
    started = time.monotonic()
    with pytest.raises(MailboxUnavailable, match="no whole answer within 1s"):
        Tokens(settings, make_provider(settings)).get()
    assert time.monotonic() - started < 8
    oauth2_dovecot.tokens.trickle = False


@pytest.mark.parametrize("provider", ["microsoft", "google"])
def test_the_library_providers_are_given_up_on_in_time_too(tmp_path, oauth2_dovecot, provider):
    settings = imap_settings(tmp_path, oauth2_dovecot, provider, timeout="1")
    tokens = Tokens(settings, make_provider(settings))
    if provider == "microsoft":
        tokens.get()  # MSAL reads the authority's metadata once: then the token request trickles
        tokens._token = None
    oauth2_dovecot.tokens.trickle = True
    started = time.monotonic()
    with pytest.raises(MailboxUnavailable, match="no whole answer within 1s"):
        tokens.get()
    assert time.monotonic() - started < 8
    with pytest.raises(MailboxUnavailable, match="has not ended yet"):
        tokens.get()  # no second request piles up behind the first
    oauth2_dovecot.tokens.trickle = False


@pytest.mark.parametrize("provider", ["generic", "microsoft", "google"])
def test_a_redirect_of_the_token_endpoint_is_refused_and_named(tmp_path, oauth2_dovecot,
                                                               provider):
    settings = imap_settings(tmp_path, oauth2_dovecot, provider)
    provider_ = make_provider(settings)
    if provider == "microsoft":
        provider_.fetch()  # the authority's metadata, read once
    requests_before = oauth2_dovecot.tokens.token_requests
    oauth2_dovecot.tokens.scripted = (307, {"Location": "https://tokens.attacker.invalid/steal"
                                                        "?x=1"}, b"")
    with pytest.raises(MailboxAuthError) as refused:
        provider_.fetch()
    message = str(refused.value)
    assert "redirect (HTTP 307)" in message and "https://tokens.attacker.invalid/steal" in message
    assert "not followed" in message and "?x=1" not in message
    assert oauth2_dovecot.tokens.token_requests == requests_before + 1


@pytest.mark.parametrize("provider", ["generic", "microsoft", "google"])
@pytest.mark.parametrize("answer", [
    (429, {"Content-Type": "application/json", "Retry-After": "0"},
     b'{"error": "invalid_request", "error_description": "throttled"}'),
    (400, {"Content-Type": "text/html"}, PAGE),
    (200, {"Content-Type": "text/html"}, PAGE),
], ids=["429", "400-page", "200-page"])
def test_throttling_and_pages_that_are_not_json_are_transient(tmp_path, oauth2_dovecot, provider,
                                                             answer):
    settings = imap_settings(tmp_path, oauth2_dovecot, provider, timeout="10")
    provider_ = make_provider(settings)
    if provider == "microsoft":
        provider_.fetch()  # the authority's metadata, read once
    oauth2_dovecot.tokens.scripted = answer
    with pytest.raises(MailboxUnavailable):
        provider_.fetch()


@pytest.mark.parametrize("provider", ["generic", "microsoft", "google"])
@pytest.mark.parametrize("reported", ["NaN", "Infinity", "-Infinity", "0", "-5", "59",
                                      "1e9", "86401", '"soon"', "true", "null"])
def test_an_unbelievable_expires_in_gives_the_default_lifetime_logged_once(
        tmp_path, oauth2_dovecot, caplog, monkeypatch, provider, reported):
    """MSAL and google-auth failed on NaN and Infinity (taken for a refused client, or a
    traceback), and every provider kept 0 or a year."""
    monkeypatch.setattr(token_providers, "_told", set())
    settings = imap_settings(tmp_path, oauth2_dovecot, provider)
    provider_ = make_provider(settings)
    if provider == "microsoft":
        provider_.fetch()  # the authority's metadata, read once
    oauth2_dovecot.tokens.scripted = (200, {"Content-Type": "application/json"},
                                      b'{"access_token": "t0k", "token_type": "Bearer", '
                                      b'"expires_in": ' + reported.encode() + b"}")
    with caplog.at_level(logging.WARNING, logger="poller.imap.token_providers"):
        grants = [provider_.fetch() for _ in range(2)]
    assert [g.lifetime for g in grants] == pytest.approx([DEFAULT_LIFETIME] * 2, abs=5)
    assert len([r for r in caplog.records if "taken as 3600" in r.getMessage()]) == 1


@pytest.mark.parametrize("reported", ["60", "3599.5", "86400"])
def test_a_believable_expires_in_is_taken(tmp_path, oauth2_dovecot, reported):
    settings = imap_settings(tmp_path, oauth2_dovecot)
    oauth2_dovecot.tokens.scripted = (200, {"Content-Type": "application/json"},
                                      f'{{"access_token": "t0k", "expires_in": {reported}}}'
                                      .encode())
    assert make_provider(settings).fetch().lifetime == float(reported)
