"""Logging in with an OAuth2 access token (SASL XOAUTH2 or OAUTHBEARER).

Every connection asks `Tokens` for a token; it comes from the cache until shortly before it
expires, so passes, the IDLE watcher and reconnects share one. A token the server refuses is
dropped and the login tried once more with a fresh one: a second refusal is a configuration
or permission problem (MailboxAuthError). The token never reaches a log line or a message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from poller.config.settings import ImapSettings
from poller.deadline import within
from poller.errors import MailboxAuthError
from poller.imap import UNAVAILABLE
from poller.imap.token_providers import Grant, Provider, make_provider, unavailable

logger = logging.getLogger(__name__)

REFRESH_AHEAD = 300.0  # a new token this long before the old one expires (at most half its life)
MAX_CACHES = 8  # settings reloads with new [oauth2] values each leave one cache behind

HINTS = {
    "microsoft": "in Exchange Online, register the app's service principal and give it this "
                 "mailbox (New-ServicePrincipal, Add-MailboxPermission); the app needs the "
                 "IMAP.AccessAsApp permission with admin consent",
    "google": "delegate the service account's client ID domain-wide for the [oauth2] scope, "
              "and make [imap] username the mailbox's address",
    "generic": "check that the token endpoint issues tokens for this mailbox and server",
}


class Tokens:
    """The access token of one mailbox's [oauth2] settings, fetched when none is cached or the
    cached one is about to expire. Thread-safe; `fetches` counts the token endpoint's grants."""

    def __init__(self, settings: ImapSettings, provider: Provider,
                 clock: Callable[[], float] = time.monotonic):
        assert settings.oauth2 is not None
        self.settings = settings
        self._source = f"the {settings.oauth2.provider} token endpoint"
        self._provider = provider
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._expires_at = 0.0
        self._asking = threading.Event()  # a token request is under way (maybe given up on)
        self.fetches = 0

    def get(self) -> str:
        """Return a token that is not about to expire, fetching one if needed."""
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._renew_at:
                grant = self._fetch()
                self.fetches += 1
                self._token = grant.token
                self._expires_at = now + grant.lifetime
                self._renew_at = self._expires_at - min(REFRESH_AHEAD, grant.lifetime / 2)
                logger.debug("new OAuth2 token for %s from %s, valid for %.0fs",
                             self.settings.username, self._source, grant.lifetime)
            return self._token

    def _fetch(self) -> Grant:
        """Return the provider's grant within [imap] timeout (and a second), whatever the token
        endpoint sends; a request given up on is left to end on its own, and no second one is
        started meanwhile (the endpoint is unavailable until it ends)."""
        timeout = self.settings.timeout
        if self._asking.is_set():
            raise unavailable(self.settings, "the token request given up on earlier has not "
                              "ended yet")

        def ask() -> Grant:
            try:
                return self._provider.fetch()
            finally:
                self._asking.clear()

        self._asking.set()
        try:
            return within(ask, timeout + 1.0, name="oauth2-token")
        except TimeoutError:
            raise unavailable(self.settings, f"no whole answer within {timeout:g}s") from None

    def drop(self, token: str) -> None:
        """Forget TOKEN (the server refused it), unless a newer one replaced it already."""
        with self._lock:
            if self._token == token:
                self._token = None

    def valid_for(self) -> float:
        """Return the seconds the cached token stays valid (0 when there is none)."""
        with self._lock:
            return max(0.0, self._expires_at - self._clock()) if self._token else 0.0


_caches: dict[tuple[object, ...], Tokens] = {}
_caches_lock = threading.Lock()


def tokens_for(settings: ImapSettings) -> Tokens:
    """Return the token cache of these settings, shared by every connection of the process and
    kept across settings reloads that leave [imap] username and [oauth2] as they were."""
    key = (settings.oauth2, settings.username, settings.timeout)
    with _caches_lock:
        tokens = _caches.get(key)
        if tokens is None:
            while len(_caches) >= MAX_CACHES:
                del _caches[next(iter(_caches))]
            tokens = _caches[key] = Tokens(settings, make_provider(settings))
        return tokens


def login(client: IMAPClient, settings: ImapSettings) -> None:
    """Authenticate CLIENT with [imap] auth; on a refusal fetch a fresh token and try once more.

    Raises MailboxAuthError when the server does not offer the mechanism or refuses the fresh
    token too; LoginError (for translated()) when the server could not check the login.
    """
    mechanism = settings.auth.upper()
    if not client.has_capability(f"AUTH={mechanism}"):
        raise MailboxAuthError(f"IMAP {settings.host}:{settings.port} does not offer "
                               f"AUTH={mechanism}; check [imap] auth")
    tokens = tokens_for(settings)
    for fresh in (False, True):
        token = tokens.get()
        try:
            _authenticate(client, mechanism, settings.username, token)
            return
        except LoginError as exc:
            if UNAVAILABLE in str(exc):
                raise
            tokens.drop(token)
            refusal = exc
        if not fresh:
            logger.info("the server refused the OAuth2 token of %s (%s); trying once more with "
                        "a fresh token", settings.username, refusal)
    o = settings.oauth2
    assert o is not None
    raise MailboxAuthError(
        f"IMAP {settings.host}:{settings.port} refused the {mechanism} login of mailbox "
        f"{settings.username} twice, the second time with a fresh token from the {o.provider} "
        f"token endpoint ({o.endpoint}): {refusal}; {HINTS[o.provider]}")


class _Sasl:
    """One XOAUTH2 or OAUTHBEARER exchange for imapclient's sasl_login: the client's response,
    then, to an error challenge, the dummy response RFC 7628 asks for (the server's reason is
    kept for the message)."""

    def __init__(self, mechanism: str, user: str, token: str):
        if mechanism == "XOAUTH2":
            self._response = f"user={user}\1auth=Bearer {token}\1\1"
            self._dummy = b""
        else:  # OAUTHBEARER, RFC 7628 section 3.1
            authzid = user.replace("=", "=3D").replace(",", "=2C")
            self._response = f"n,a={authzid},\1auth=Bearer {token}\1\1"
            self._dummy = b"\1"
        self._answered = False
        self.challenge = ""

    def __call__(self, challenge: bytes) -> bytes:
        if not self._answered:
            self._answered = True
            return self._response.encode("utf-8")
        self.challenge = " ".join(challenge.decode("utf-8", "replace").split())[:300]
        return self._dummy


def _authenticate(client: IMAPClient, mechanism: str, user: str, token: str) -> None:
    sasl = _Sasl(mechanism, user, token)
    try:
        client.sasl_login(mechanism, sasl)
    except LoginError as exc:
        if sasl.challenge:
            raise LoginError(f"{exc} (the server said {sasl.challenge})") from None
        raise

