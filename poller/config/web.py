"""The [web] settings of `poller web`: who may look when it listens beyond this machine, and
when alerts count as a storm.

Read by poller.config.settings.load_settings, which hands over its typed section reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from poller.config.sections import Section
from poller.errors import ConfigError


@dataclass(frozen=True)
class WebSettings:
    """password None: no password file, so `poller web` listens on loopback only."""

    user: str = "poller"
    password: str | None = field(default=None, repr=False)
    storm_alerts: int = 50  # more alerts than this in 10 minutes are a storm
    certfile: str | None = None  # TLS: the certificate (chain) and its key, PEM
    keyfile: str | None = None


def read_web_settings(section: Section, base: Path) -> WebSettings:
    """Return the [web] settings; the password is the first line of password_file, TLS
    takes both certfile and keyfile."""
    settings = WebSettings(
        user=section.str("user", WebSettings.user),
        password=section.secret_file("password_file", base=base),
        storm_alerts=section.int("storm_alerts", WebSettings.storm_alerts, minimum=1),
        certfile=_file(section, "certfile", base),
        keyfile=_file(section, "keyfile", base),
    )
    if (settings.certfile is None) != (settings.keyfile is None):
        raise ConfigError("[web] certfile and keyfile: set both for TLS, or neither")
    return settings


def _file(section: Section, key: str, base: Path) -> str | None:
    path = section.path(key, base=base)
    if path is not None and not path.is_file():
        raise ConfigError(f"[web] {key}: {path} does not exist")
    return None if path is None else str(path)
