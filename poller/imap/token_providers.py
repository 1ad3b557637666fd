"""Where OAuth2 access tokens come from: one small interface, `fetch() -> Grant`, three providers.

- ``generic``: the RFC 6749 client credentials grant, with the standard library only;
- ``microsoft``: MSAL's ConfidentialClientApplication (client secret or certificate);
- ``google``: google-auth's service account credentials with domain-wide delegation.

MSAL and google-auth are optional extras, imported only by the provider that needs them. Each
provider translates its library's errors here, once: the endpoint refusing the client is a
MailboxAuthError (retrying will not help), the endpoint being down, busy or failing is a
MailboxUnavailable (retried). No message carries a token or a secret.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import ssl
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from poller.config.oauth2 import key_and_certificate
from poller.config.settings import ImapSettings
from poller.deadline import post
from poller.errors import MailboxAuthError, MailboxUnavailable

logger = logging.getLogger(__name__)

MAX_ANSWER = 1 << 20  # bytes read from a token endpoint
DEFAULT_LIFETIME = 3600.0  # seconds, for an answer without a usable expires_in
# expires_in taken as it is only within these bounds (seconds): 0, NaN or a year would make
# every connection fetch a token, or keep one the endpoint revoked long ago.
MIN_LIFETIME, MAX_LIFETIME = 60.0, 86400.0
# HTTP statuses that say "later" rather than "you are wrong"
TRANSIENT_STATUSES = frozenset({408, 425, 429})
# OAuth2 error codes that say "try again later" (RFC 6749 4.1.2.1, RFC 8628 3.5); any other
# error of the endpoint refuses the client.
TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error", "slow_down"})
HINTS = {
    "microsoft": "check [oauth2] client_id, tenant, the client secret or certificate and scope",
    "google": "check the service account key and its domain-wide delegation for [oauth2] scope",
    "generic": "check [oauth2] client_id, client_secret_file, token_url and scope",
}


@dataclass(frozen=True)
class Grant:
    """An access token and the seconds it stays valid from now."""

    token: str = field(repr=False)
    lifetime: float


class Provider(Protocol):
    def fetch(self) -> Grant:
        """Ask the token endpoint for a new token; raise MailboxAuthError or MailboxUnavailable."""
        ...


def make_provider(settings: ImapSettings) -> Provider:
    """Return the provider [oauth2] names; it does no I/O until its first fetch()."""
    assert settings.oauth2 is not None
    kind = {"generic": ClientCredentials, "microsoft": Microsoft, "google": Google}
    return kind[settings.oauth2.provider](settings)


def refused(settings: ImapSettings, error: str, description: object = "") -> MailboxAuthError:
    """Return the error for a token endpoint that refuses the client: a configuration problem."""
    o = settings.oauth2
    assert o is not None
    said = f"{error}: {_oneline(description)}" if description else error
    return MailboxAuthError(f"OAuth2 for mailbox {settings.username}: the {o.provider} token "
                            f"endpoint ({o.endpoint}) refused the client: {said}; "
                            f"{HINTS[o.provider]}")


def unavailable(settings: ImapSettings, detail: object) -> MailboxUnavailable:
    """Return the error for a token endpoint that cannot answer now."""
    o = settings.oauth2
    assert o is not None
    return MailboxUnavailable(f"OAuth2 for mailbox {settings.username}: the {o.provider} token "
                              f"endpoint ({o.endpoint}) is unavailable: {_oneline(detail)}")


def untrusted(settings: ImapSettings, detail: object) -> MailboxAuthError:
    """Return the error for a token endpoint whose certificate is not trusted."""
    o = settings.oauth2
    assert o is not None
    return MailboxAuthError(f"OAuth2 for mailbox {settings.username}: the certificate of the "
                            f"{o.provider} token endpoint ({o.endpoint}) is not trusted "
                            f"({_oneline(detail)}); set [oauth2] cafile to the CA that signed it")


class Redirected(Exception):  # noqa: N818 - an answer, raised to leave the library's code
    """A token endpoint answered with a redirect, which is not followed."""

    def __init__(self, status: int, location: str | None):
        super().__init__(status, location)
        self.status, self.location = status, location or ""


def redirected(settings: ImapSettings, answer: Redirected) -> MailboxAuthError:
    """Return the error for a token endpoint that redirects: named, never followed (the request
    carries the client's secret or assertion)."""
    where = urllib.parse.urlsplit(answer.location)
    return refused(settings, f"redirect (HTTP {answer.status})",
                   f"it sends the request on to {where.scheme}://{where.netloc}{where.path}, "
                   "which is not followed (the request carries the client's credential); set "
                   "[oauth2] token_url (or authority) to the endpoint that issues tokens")


def _oneline(text: object, limit: int = 300) -> str:
    """Return TEXT on one line, cut to LIMIT characters (descriptions can be long)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


class ClientCredentials:
    """The RFC 6749 client credentials grant (section 4.4) with the standard library; the
    client authenticates in the form body (client_secret_post). The request ends within [imap]
    timeout whatever the endpoint sends, and a redirect is refused: the form carries the client
    secret, which goes to token_url only."""

    def __init__(self, settings: ImapSettings):
        o = settings.oauth2
        assert o is not None and o.token_url
        self.settings = settings
        self._url = urllib.parse.urlsplit(o.token_url)
        self._form = urllib.parse.urlencode({
            "grant_type": "client_credentials", "client_id": o.client_id,
            "client_secret": o.credential, "scope": o.scope}).encode("ascii")
        self._cafile = o.cafile

    def fetch(self) -> Grant:
        try:
            context = ssl.create_default_context(cafile=self._cafile)
        except (ssl.SSLError, OSError) as exc:
            raise untrusted(self.settings, f"{self._cafile}: {exc}") from None
        url, timeout = self._url, self.settings.timeout
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        try:
            answer = post(url.hostname or "", url.port, target, self._form, {
                "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
                timeout, context, limit=MAX_ANSWER)
        except TimeoutError:
            raise unavailable(self.settings, f"no whole answer within {timeout:g}s") from None
        except ssl.SSLCertVerificationError as exc:
            raise untrusted(self.settings, exc.verify_message) from None
        except (OSError, http.client.HTTPException) as exc:
            raise unavailable(self.settings, f"{type(exc).__name__}: {exc}") from None
        if 300 <= answer.status < 400:
            raise redirected(self.settings, Redirected(answer.status,
                                                       answer.headers.get("Location")))
        body = _json(answer.body)
        if answer.status != 200:
            raise self._http_error(answer.status, body)
        return _grant(self.settings, body)

    def _http_error(self, status: int, body: dict[str, Any]) -> Exception:
        error = str(body.get("error") or f"HTTP {status}")
        if status >= 500 or status in (408, 429) or error in TRANSIENT_ERRORS or not body:
            # not JSON (a proxy's page, a throttling answer): nothing says the client is wrong
            return unavailable(self.settings, f"HTTP {status} {error}")
        return refused(self.settings, error, body.get("error_description", ""))


def _json(data: bytes) -> dict[str, Any]:
    """Return the JSON object in DATA, or {} when it is none (an HTML error page, say)."""
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _grant(settings: ImapSettings, body: dict[str, Any]) -> Grant:
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise unavailable(settings, "the answer holds no access_token")
    return Grant(token, lifetime(settings, body.get("expires_in", DEFAULT_LIFETIME)))


_told: set[str] = set()  # endpoints whose unusable expires_in was logged already


def lifetime(settings: ImapSettings, value: object) -> float:
    """Return the seconds a token lives: value when it is a finite number from MIN_LIFETIME to
    MAX_LIFETIME, else DEFAULT_LIFETIME (logged once per endpoint)."""
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if math.isfinite(seconds) and MIN_LIFETIME <= seconds <= MAX_LIFETIME:
        return seconds
    o = settings.oauth2
    endpoint = o.endpoint if o is not None else ""
    if endpoint not in _told:
        _told.add(endpoint)
        logger.warning("the OAuth2 token endpoint (%s) says its tokens live %s seconds; taken "
                       "as %.0f (only %.0f to %.0f is believed)", endpoint,
                       _oneline(repr(value), 40), DEFAULT_LIFETIME, MIN_LIFETIME, MAX_LIFETIME)
    return DEFAULT_LIFETIME


class Microsoft:
    """Microsoft Entra ID through MSAL: app-only access (client credentials) with a client
    secret or a certificate, for the scope https://outlook.office365.com/.default."""

    def __init__(self, settings: ImapSettings):
        self.settings = settings
        self._app: Any = None  # built on the first fetch: MSAL reads the authority's metadata
        self._session: Any = None

    def fetch(self) -> Grant:
        import msal
        import requests

        o = self.settings.oauth2
        assert o is not None
        try:
            if self._app is None:
                self._session = _session(self.settings)
                self._app = msal.ConfidentialClientApplication(
                    o.client_id, client_credential=_msal_credential(o.credential,
                                                                    o.client_certificate_file),
                    authority=o.authority, instance_discovery=False, http_client=self._session)
            # The cache in front of the provider decides when a new token is due: ask for one.
            self._app.remove_tokens_for_client()
            result = self._app.acquire_token_for_client(scopes=[o.scope])
        except Redirected as exc:
            raise redirected(self.settings, exc) from None
        except requests.exceptions.SSLError as exc:
            raise untrusted(self.settings, exc) from None
        except (OSError, msal.exceptions.MsalServiceError) as exc:
            raise unavailable(self.settings, f"{type(exc).__name__}: {exc}") from None
        except json.JSONDecodeError:  # a proxy's page, a throttling answer: not the client
            raise unavailable(self.settings, f"the answer is not JSON (HTTP "
                              f"{getattr(self._session, 'status', '?')})") from None
        except ValueError as exc:  # the authority's metadata could not be read or used
            raise refused(self.settings, "bad authority or credential", exc) from None
        if "access_token" in result:
            return _grant(self.settings, result)
        error = str(result.get("error") or "no access_token")
        status = getattr(self._session, "status", None)
        if error in TRANSIENT_ERRORS or status in TRANSIENT_STATUSES or (status or 0) >= 500:
            raise unavailable(self.settings, f"HTTP {status} {error}: "
                              f"{result.get('error_description', '')}")
        raise refused(self.settings, error, result.get("error_description", ""))


def _msal_credential(credential: str, certificate_file: str | None) -> str | dict[str, str]:
    """Return MSAL's client_credential: the secret, or the key and certificate of a PEM file
    (MSAL derives the SHA-256 thumbprint from the certificate)."""
    pair = key_and_certificate(credential) if certificate_file else None
    if pair is None:
        return credential
    return {"private_key": pair[0], "public_certificate": pair[1]}


class Google:
    """Google Workspace through google-auth: a service account with domain-wide delegation
    acting as the mailbox ([imap] username), token endpoint from its key file or token_url."""

    def __init__(self, settings: ImapSettings):
        self.settings = settings
        self._credentials: Any = None
        self._request: Any = None

    def fetch(self) -> Grant:
        import requests
        from google.auth import exceptions
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        o = self.settings.oauth2
        assert o is not None
        try:
            if self._credentials is None:
                info = dict(json.loads(o.credential), token_uri=o.token_url)
                self._credentials = service_account.Credentials.from_service_account_info(
                    info, scopes=[o.scope], subject=self.settings.username)
                self._request = Request(session=_session(self.settings))
            self._credentials.refresh(self._request)
        except Redirected as exc:
            raise redirected(self.settings, exc) from None
        except exceptions.RefreshError as exc:
            if len(exc.args) < 2 or not isinstance(exc.args[1], dict):
                # the answer was not JSON (a proxy's page, a throttling answer): not the client
                raise unavailable(self.settings, "the answer is not JSON") from None
            answer = exc.args[1]
            error = str(answer.get("error") or (exc.args[0] if exc.args else "refused"))
            if getattr(exc, "retryable", False) or error in TRANSIENT_ERRORS:
                raise unavailable(self.settings, error) from None
            raise refused(self.settings, error, answer.get("error_description", "")) from None
        except exceptions.TransportError as exc:
            cause = exc.args[0] if exc.args else exc
            if isinstance(cause, requests.exceptions.SSLError):
                raise untrusted(self.settings, cause) from None
            raise unavailable(self.settings, f"{type(cause).__name__}: {cause}") from None
        except TypeError:  # google-auth indexing a 2xx answer that was not JSON
            raise unavailable(self.settings, "the answer is not JSON") from None
        except ValueError as exc:  # a key google-auth cannot use
            raise refused(self.settings, "unusable service account key", exc) from None
        expiry = self._credentials.expiry
        if expiry.tzinfo is None:  # google-auth keeps naive UTC
            expiry = expiry.replace(tzinfo=UTC)
        return Grant(self._credentials.token,
                     lifetime(self.settings, (expiry - datetime.now(UTC)).total_seconds()))


def _session(settings: ImapSettings) -> Any:
    """Return a requests Session for the libraries' token requests: verified against [oauth2]
    cafile (default: the system's trust), each request given up after [imap] timeout, no
    redirect followed, and an answer's expires_in made believable (`lifetime`) before the
    library reads it: MSAL and google-auth fail on NaN or Infinity, and would keep 0 or a
    year. Setting Session.verify alone loses to REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE from the
    environment, so verify goes with every request."""
    import requests

    assert settings.oauth2 is not None
    cafile, timeout = settings.oauth2.cafile, settings.timeout

    class Session(requests.Session):
        status: int | None = None  # of the last answer: MSAL's result does not say it

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if cafile:
                kwargs["verify"] = cafile
            kwargs["timeout"] = timeout
            kwargs["allow_redirects"] = False  # the request may carry the client's secret
            answer = super().request(method, url, *args, **kwargs)
            self.status = answer.status_code
            if 300 <= answer.status_code < 400:
                raise Redirected(answer.status_code, answer.headers.get("Location"))
            _believable(settings, answer)
            return answer

    return Session()


def _believable(settings: ImapSettings, answer: Any) -> None:
    """Put a believable expires_in into a token answer (a requests Response) that has one."""
    if b"expires_in" not in answer.content:
        return
    body = _json(answer.content)
    if "expires_in" not in body:
        return
    seconds = lifetime(settings, body["expires_in"])
    if seconds != body["expires_in"] or isinstance(body["expires_in"], bool):
        body["expires_in"] = seconds
        answer._content = json.dumps(body).encode()  # what .text and .json() read
