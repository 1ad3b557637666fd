"""The pages and JSON endpoints of the web view: each reads the store through poller.store's
read-only queries in one read transaction and renders a template (every value escaped).

The charts' JSON endpoints and the tables beside the charts come from the same dicts, so the
pictures and the numbers cannot differ.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from urllib.parse import urlencode

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from poller.ates.outcomes import STATUS_COMPLETE, STATUS_NEW
from poller.errors import StoreError
from poller.store import activity, browse
from poller.store.engine import Engine
from poller.store.readonly import read_within

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("poller.web", "templates"),
    autoescape=True,  # mail text (subjects, bodies, names) is shown as text, always
    undefined=jinja2.StrictUndefined,
)
READ_SECONDS = 5.0  # a page's reading stops here (every page takes milliseconds: bench/web.py)
# an ISO-8601 UTC timestamp of the store as a page shows it: 2026-12-06 10:55:24
TEMPLATES.filters["when"] = lambda stamp: (stamp or "").replace("T", " ").removesuffix("+00:00")
STATUSES = (browse.OPEN, browse.ANY, STATUS_NEW, STATUS_COMPLETE)

# chart name → the function that reads its numbers (the view, the time)
CHARTS: dict[str, Callable[..., dict[str, object]]] = {
    "alerts-per-day": lambda db, now, view: activity.alerts_per_day(db, now),
    "noisiest": lambda db, now, view: activity.noisiest(db, now),
    "time-to-clear": lambda db, now, view: activity.time_to_clear(db, now),
    "storms": lambda db, now, view: activity.storms(db, now, view.storm_alerts),
}


def _read(request: Request, reading: Callable[[Engine], object]) -> object:
    """Return what READING reads, in one read transaction (one snapshot of the store) that may
    take READ_SECONDS."""
    db = request.app.state.view.db
    try:
        with read_within(db, READ_SECONDS):
            return reading(db)
    except StoreError as exc:
        raise HTTPException(503, f"{exc} (a narrower filter reads less)") from None


def _render(request: Request, template: str, status: int = 200, **values: object) -> Response:
    view = request.app.state.view
    now = view.clock()
    storm = _read(request, lambda db: activity.storms(db, now, view.storm_alerts, hours=1))
    html = TEMPLATES.get_template(template).render(
        path=request.url.path, storm=storm, now=now.strftime("%Y-%m-%d %H:%M UTC"), **values)
    return HTMLResponse(html, status)


def _number(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise HTTPException(400, f"{name}: expected a number")
    return int(raw)


def _text(request: Request, name: str) -> str | None:
    return request.query_params.get(name, "").strip()[:200] or None


def ticket_list(request: Request) -> Response:
    want = browse.TicketFilter(
        status=_text(request, "status") or browse.OPEN,
        organization=_number(request, "organization"),
        device=_text(request, "device"),
        queue=_text(request, "queue"),
        priority=_text(request, "priority"),
    )
    before = _number(request, "before")
    page, orgs = _read(request, lambda db: (browse.ticket_page(db, want, before),
                                            browse.organizations(db)))
    shown = {k: v for k, v in vars(want).items() if v is not None and (k, v) != ("status",
                                                                                 browse.OPEN)}

    def link(**changes: object) -> str:
        query = {**shown, **changes}
        return "/?" + urlencode({k: v for k, v in query.items() if v is not None})

    return _render(request, "tickets.html", page=page, want=want, organizations=orgs,
                   statuses=STATUSES, link=link, first=before is None,
                   window=browse.WINDOW if browse.windowed(want) else None)


def ticket_page(request: Request) -> Response:
    number = request.path_params["number"]
    found = _read(request, lambda db: browse.ticket(db, number))
    if found is None:
        raise HTTPException(404, f"no ticket {number}")
    return _render(request, "ticket.html", ticket=found)


def quarantine_page(request: Request) -> Response:
    before = _number(request, "before")
    page = _read(request, lambda db: browse.quarantine(db, before))
    config = request.app.state.view.config
    for row in page.rows:
        row["requeue"] = (shlex.join(["poller", "--config", config, "requeue",
                                      row["message_id"]]) if row["message_id"] else "")
    return _render(request, "quarantine.html", page=page, first=before is None)


def events_page(request: Request) -> Response:
    before = _number(request, "before")
    page = _read(request, lambda db: browse.undelivered(db, before))
    return _render(request, "events.html", page=page, first=before is None)


def _chart(request: Request, name: str) -> dict[str, object]:
    view = request.app.state.view
    now = view.clock()
    return _read(request, lambda db: CHARTS[name](db, now, view))


def charts_page(request: Request) -> Response:
    return _render(request, "charts.html", **{name.replace("-", "_"): _chart(request, name)
                                              for name in CHARTS})


def chart_json(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in CHARTS:
        raise HTTPException(404, f"no chart {name}")
    return JSONResponse(_chart(request, name))


async def not_found(request: Request, exc: Exception) -> Response:
    detail = getattr(exc, "detail", "not found")
    return HTMLResponse(TEMPLATES.get_template("error.html").render(
        path=request.url.path, storm=None, now="", status=404, detail=detail), 404)
