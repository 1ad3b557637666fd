"""The [oauth2] section: where an XOAUTH2 / OAUTHBEARER login gets its access token.

Read only when [imap] auth is xoauth2 or oauthbearer. Secrets come from files only (a client
secret's first line, a PEM certificate with its key, a service account's JSON key file); the
settings keep their contents, masked wherever settings are shown.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from poller.config.sections import Section
from poller.errors import ConfigError

PROVIDERS = ("microsoft", "google", "generic")
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_SCOPES = {
    "microsoft": "https://outlook.office365.com/.default",  # app-only: IMAP.AccessAsApp
    "google": "https://mail.google.com/",
}
# The module each provider imports, its distribution, and the extra that installs it.
LIBRARIES = {"microsoft": ("msal", "msal", "m365"),
             "google": ("google.oauth2", "google-auth", "google")}
# The keys each provider reads; any other key of the section set is a mistake worth naming.
KEYS = {
    "microsoft": {"client_id", "client_secret_file", "client_certificate_file", "tenant",
                  "authority", "scope", "cafile"},
    "google": {"service_account_file", "token_url", "scope", "cafile"},
    "generic": {"client_id", "client_secret_file", "token_url", "scope", "cafile"},
}
ALL_KEYS = set().union(*KEYS.values())
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s.+?\s-----END \1-----", re.S)


@dataclass(frozen=True)
class OAuth2Settings:
    """How to get an access token; `credential` is the secret itself (masked when shown): the
    client secret, the PEM certificate and key, or the service account's JSON key."""

    provider: str
    credential: str = field(repr=False)
    client_id: str | None = None
    client_secret_file: str | None = None
    client_certificate_file: str | None = None
    service_account_file: str | None = None
    tenant: str | None = None
    authority: str | None = None
    token_url: str | None = None
    scope: str = ""
    cafile: str | None = None

    @property
    def endpoint(self) -> str:
        """Return where tokens come from, for messages: the authority or the token URL."""
        return (self.authority if self.provider == "microsoft" else self.token_url) or ""


def read_oauth2(oauth2: Section, base: Path) -> OAuth2Settings:
    """Read and check [oauth2]; raise ConfigError naming the first bad key."""
    if not oauth2.str("provider"):
        raise ConfigError(f"[oauth2] provider: is required with [imap] auth = xoauth2 or "
                          f"oauthbearer (one of {', '.join(PROVIDERS)})")
    provider = oauth2.choice("provider", PROVIDERS, "")
    if oauth2.str("client_secret"):
        raise ConfigError("[oauth2] client_secret: secrets are read from files only: put it in "
                          "a file only the poller can read (chmod 600) and set client_secret_file")
    for key in sorted(ALL_KEYS - KEYS[provider]):
        if oauth2.str(key):
            raise ConfigError(f"[oauth2] {key}: is not used with provider = {provider}")
    if provider in LIBRARIES and not _installed(LIBRARIES[provider][0]):
        _, package, extra = LIBRARIES[provider]
        raise ConfigError(f"[oauth2] provider: {provider} needs the {package} package: "
                          f"pip install 'ates-poller[{extra}]'")

    def path(key: str) -> str | None:
        found = oauth2.path(key, base=base)
        return str(found) if found else None

    cafile = path("cafile")
    if cafile and not Path(cafile).is_file():
        raise ConfigError(f"[oauth2] cafile: {cafile} does not exist")
    if provider == "google":
        credential = _service_account(oauth2, base)
    else:
        oauth2.str("client_id", required=True)
        credential = _client_credential(oauth2, base, provider)
    token_url = oauth2.str("token_url", required=provider == "generic")
    if token_url:
        _check_url("token_url", token_url)
    elif provider == "google":
        token_url = json.loads(credential)["token_uri"]
        _check_url("service_account_file", token_url)
    authority = None
    if provider == "microsoft":
        authority = oauth2.str("authority") or \
            f"{MICROSOFT_AUTHORITY}/{oauth2.str('tenant', required=True)}"
        _check_url("authority", authority, path_needed=True)
    return OAuth2Settings(
        provider=provider,
        credential=credential,
        client_id=oauth2.str("client_id"),
        client_secret_file=path("client_secret_file"),
        client_certificate_file=path("client_certificate_file"),
        service_account_file=path("service_account_file"),
        tenant=oauth2.str("tenant"),
        authority=authority.rstrip("/") if authority else None,
        token_url=token_url,
        scope=oauth2.str("scope", DEFAULT_SCOPES.get(provider),
                         required=provider not in DEFAULT_SCOPES) or "",
        cafile=cafile,
    )


def _client_credential(oauth2: Section, base: Path, provider: str) -> str:
    secret = oauth2.secret_file("client_secret_file", base=base)
    certificate = oauth2.secret_file("client_certificate_file", base=base, whole=True)
    if secret and certificate:
        raise ConfigError("[oauth2] client_certificate_file: set either it or "
                          "client_secret_file, not both")
    if certificate:
        if key_and_certificate(certificate) is None:
            raise ConfigError("[oauth2] client_certificate_file: expected the certificate and its "
                              "unencrypted private key, both PEM, in one file")
        return certificate
    if secret:
        return secret
    other = " (or client_certificate_file)" if provider == "microsoft" else ""
    raise ConfigError(f"[oauth2] client_secret_file: is required{other}")


def key_and_certificate(pem: str) -> tuple[str, str] | None:
    """Return the first unencrypted private key and the first certificate of a PEM text, or
    None when it lacks one of them."""
    blocks: dict[str, str] = {}
    for match in PEM_BLOCK.finditer(pem):
        kind = "KEY" if match.group(1).endswith("PRIVATE KEY") and \
            not match.group(1).startswith("ENCRYPTED") else match.group(1)
        blocks.setdefault(kind, match.group(0))
    if "KEY" not in blocks or "CERTIFICATE" not in blocks:
        return None
    return blocks["KEY"], blocks["CERTIFICATE"]


def _service_account(oauth2: Section, base: Path) -> str:
    text = oauth2.secret_file("service_account_file", base=base, whole=True)
    if text is None:
        raise ConfigError("[oauth2] service_account_file: is required with provider = google "
                          "(the service account's JSON key file)")
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    needed = ("client_email", "private_key", "token_uri")
    if not isinstance(info, dict) or info.get("type") != "service_account" or \
            not all(isinstance(info.get(key), str) and info[key] for key in needed):
        raise ConfigError("[oauth2] service_account_file: not a service account JSON key file "
                          "(type service_account, with client_email, private_key and token_uri)")
    return text


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def _check_url(key: str, url: str, *, path_needed: bool = False) -> None:
    parts = urlparse(url)
    if parts.scheme != "https" or not parts.hostname or (path_needed and
                                                           not parts.path.strip("/")):
        shape = "https://host/tenant" if path_needed else "an https:// URL"
        raise ConfigError(f"[oauth2] {key}: expected {shape}, not {url!r}")
