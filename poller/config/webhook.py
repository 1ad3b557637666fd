"""The [webhook] settings: where ticket events go, the secret they are signed with, which events.

Read by poller.config.settings.load_settings, which hands over its typed section reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from poller.ates.events import COMPLETED, EVENTS
from poller.ates.policy import MASK
from poller.config.sections import Section
from poller.errors import ConfigError


@dataclass(frozen=True)
class WebhookSettings:
    """url None: no webhooks. Events are written to the outbox only for the subscribed ones."""

    url: str | None = None
    secret: str = field(default="", repr=False)
    events: tuple[str, ...] = (COMPLETED,)
    timeout: float = 10.0
    initial_wait: float = 10.0
    max_wait: float = 600.0
    budget: float = 30.0  # seconds a delivery run of `once` (or `ticket complete`) may take
    max_attempts: int = 10  # refusals (other than 408/425/429) before an event is rejected
    keep_days: float = 30.0  # delivered events are pruned after this many days
    cafile: str | None = None  # a CA to trust for an https receiver, besides the system's

    def subscribed(self) -> frozenset[str]:
        """Return the events to write to the outbox: none while no url is set."""
        return frozenset(self.events) if self.url else frozenset()

    def shown_url(self) -> str:
        """Return the url as logs and listings may show it: a password, path or query string
        masked (receivers sometimes take a token there: chat and automation webhooks do in the
        path)."""
        return masked_url(self.url) if self.url else ""


def masked_url(url: str) -> str:
    """Return url with the password of its user part, its path and its query string replaced by
    a mask (scheme, host and port stay: enough to tell receivers apart)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username}:{MASK}@{netloc.rpartition('@')[2]}"
    path = f"/{MASK}" if parts.path.strip("/") else parts.path
    return urlunsplit((parts.scheme, netloc, path, MASK if parts.query else "", ""))


def _cafile(section: Section, base: Path) -> str | None:
    path = section.path("cafile", base=base)
    if path is not None and not path.is_file():
        raise ConfigError(f"[webhook] cafile: {path} does not exist")
    return None if path is None else str(path)


def read_webhook_settings(section: Section, base: Path) -> WebhookSettings:
    """Return the [webhook] settings, checked (also while no url is set, so that a mistake shows
    before the url is): a url needs a secret (or secret_file)."""
    url = section.str("url")
    if url is not None:
        parts = urlsplit(url)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:  # not a number, or over 65535
            port_ok = False
        if (parts.scheme not in ("http", "https") or not parts.hostname or not port_ok
                or any(c.isspace() or not c.isprintable() for c in url)):
            raise ConfigError(f"[webhook] url: {masked_url(url)!r} is not an http:// or "
                              "https:// URL (with a port from 1 to 65535, without spaces)")
    names = tuple(dict.fromkeys(
        part.strip().lower() for part in (section.str("events") or COMPLETED).split(",")
        if part.strip()))
    unknown = [name for name in names if name not in EVENTS]
    if unknown or not names:
        raise ConfigError(f"[webhook] events: unknown {', '.join(unknown) or '(none given)'} "
                          f"(use any of {', '.join(EVENTS)})")
    settings = WebhookSettings(
        url=url,
        secret=section.secret("secret", base=base) if url is not None else "",
        events=names,
        timeout=section.float("timeout", WebhookSettings.timeout),
        initial_wait=section.float("initial_wait", WebhookSettings.initial_wait),
        max_wait=section.float("max_wait", WebhookSettings.max_wait),
        budget=section.float("budget", WebhookSettings.budget),
        max_attempts=section.int("max_attempts", WebhookSettings.max_attempts, minimum=1),
        keep_days=section.float("keep_days", WebhookSettings.keep_days),
        cafile=_cafile(section, base),
    )
    if settings.max_wait < settings.initial_wait:
        raise ConfigError("[webhook] max_wait: must be at least [webhook] initial_wait")
    return settings
