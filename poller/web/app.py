"""The web view as an ASGI application: its routes, and the rules every response follows.

Only GET and HEAD are answered (anything else: 405, before any route runs); a query string is
bounded; with a password set, every request needs HTTP Basic credentials, compared in
constant time; every response carries a Content-Security-Policy that lets a page load only the
app's own files (no inline script, no other origin), and pages are never cached.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from poller.clock import Clock, utc_now
from poller.store.engine import Engine
from poller.web import pages

STATIC = Path(__file__).parent / "static"
MAX_QUERY_BYTES = 2048
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


@dataclass(frozen=True)
class Access:
    """Who may look: nobody needs to log in while password is None (loopback only)."""

    user: str = "poller"
    password: str | None = None


@dataclass(frozen=True)
class View:
    """What the pages read: the database (open read-only), the time, the storm threshold, and
    the settings file the shown commands name."""

    db: Engine
    storm_alerts: int = 50
    config: str = "settings.ini"
    clock: Clock = utc_now


def create_app(view: View, access: Access = Access()) -> ASGIApp:
    """Return the web view over view.db as an ASGI application."""
    app = Starlette(routes=[
        Route("/", pages.ticket_list),
        Route("/tickets/{number:str}", pages.ticket_page),
        Route("/quarantine", pages.quarantine_page),
        Route("/events", pages.events_page),
        Route("/charts", pages.charts_page),
        Route("/charts/{name:str}.json", pages.chart_json),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ], exception_handlers={404: pages.not_found})
    app.state.view = view
    return _Guard(app, access)


class _Guard:
    """The rules in front of every route: methods, request size, credentials, headers."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(HEADERS)
                if not scope["path"].startswith("/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
        else:
            await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope) -> ASGIApp | None:
        if scope["method"] not in ("GET", "HEAD"):
            return PlainTextResponse("405 only GET and HEAD: this view changes nothing\n", 405,
                                     headers={"Allow": "GET, HEAD"})
        if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
            return PlainTextResponse("414 query string too long\n", 414)
        if self.access.password is not None and not self._authorized(scope):
            return PlainTextResponse("401 log in\n", 401, headers={
                "WWW-Authenticate": 'Basic realm="ates-poller", charset="UTF-8"'})
        return None

    def _authorized(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, encoded = header.partition(b" ")
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            given = b""
        user, _, password = given.partition(b":")
        # both compared whole, so the time taken tells nothing about either
        user_ok = hmac.compare_digest(user, self.access.user.encode())
        password_ok = hmac.compare_digest(password, (self.access.password or "").encode())
        return scheme.lower() == b"basic" and user_ok and password_ok
