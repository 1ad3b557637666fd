"""Paths from the settings: anchored at the settings file's folder, and the file an SQLite URL
names."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse, urlsplit, urlunsplit

SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def anchored(value: str, base: Path) -> Path:
    """Return VALUE as a path (~ and environment variables expanded), relative to BASE when it
    is not absolute."""
    path = Path(os.path.expandvars(value)).expanduser()
    return path if path.is_absolute() else base / path


def sqlite_file(url: str) -> str | None:
    """Return the file an sqlite:/// URL names; None for an in-memory database or another
    scheme."""
    parsed = urlparse(url)
    if parsed.scheme != "sqlite":
        return None
    path = unquote(parsed.path[1:]) if parsed.path.startswith("/") else parsed.path
    return path if path and path != ":memory:" else None


def anchored_sqlite_url(url: str, base: Path) -> str:
    """Return an SQLite URL whose relative file is anchored at BASE (other URLs as they are)."""
    if url.startswith(SQLITE_PREFIX) and not url.startswith(SQLITE_PREFIX + "/") \
            and url != SQLITE_PREFIX + ":memory:":
        return SQLITE_PREFIX + str(base / url[len(SQLITE_PREFIX):])
    return url


def masked_database_url(url: str) -> str:
    """Return URL as it may be shown: a password in it replaced by ***."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:  # a port that is not a number: show no part after the scheme
        return url.split("://", 1)[0] + "://***"
