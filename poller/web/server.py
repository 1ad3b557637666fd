"""Serving the web view: where it may listen, and the HTTP server's bounds.

Loopback is the default; any other address needs a password (HTTP Basic), and without TLS
that password and the tickets cross the network in plain text, which is warned about.
"""

from __future__ import annotations

import ipaddress
import logging

import uvicorn

from poller.config import Settings
from poller.errors import ConfigError
from poller.paths import masked_database_url
from poller.store.readonly import open_read_only
from poller.web.app import Access, View, create_app

logger = logging.getLogger(__name__)

# The HTTP server's bounds: a request head (line and headers) of at most 16 KB, at most 64
# connections at once (more are answered 503), idle connections closed after 5 s.
MAX_HEAD_BYTES = 16 * 1024
MAX_CONNECTIONS = 64
KEEP_ALIVE_SECONDS = 5


def is_loopback(host: str) -> bool:
    """Return whether HOST (an address, or localhost) is this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_address(settings: Settings, host: str) -> None:
    """Raise ConfigError when HOST is not loopback and [web] password_file is not set; warn
    when it is not loopback and served without TLS."""
    if is_loopback(host):
        return
    web = settings.web
    if web.password is None:
        raise ConfigError(f"poller web --host {host}: listening beyond this machine needs "
                          "[web] password_file (HTTP Basic); leave --host out for 127.0.0.1")
    if web.certfile is None:
        logger.warning("poller web on %s without TLS: the password and every ticket cross the "
                       "network in plain text; set [web] certfile and keyfile, or put a TLS "
                       "proxy in front", host)


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve the web view of [database] url on HOST:PORT until interrupted (after
    check_address)."""
    view = View(db=open_read_only(settings.database.url, settings.database.password),
                storm_alerts=settings.web.storm_alerts, config=settings.source)
    access = Access(user=settings.web.user, password=settings.web.password)
    scheme = "https" if settings.web.certfile else "http"
    shown = f"[{host}]" if ":" in host else host
    logger.info("poller web: %s://%s:%d/ (read-only, %s)", scheme, shown, port,
                masked_database_url(settings.database.url))
    uvicorn.run(create_app(view, access), host=host, port=port, http="h11", lifespan="off",
                ws="none", interface="asgi3", log_level="warning", access_log=False,
                server_header=False, h11_max_incomplete_event_size=MAX_HEAD_BYTES,
                limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=KEEP_ALIVE_SECONDS,
                ssl_certfile=settings.web.certfile, ssl_keyfile=settings.web.keyfile)
