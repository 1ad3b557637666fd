"""Alert activity for the web view's charts: alerts per day by organization, the noisiest
devices and organizations, how long tickets take to clear, and alert storms.

An alert is a mail that created, appended to or completed a ticket (the processed-mail log's
outcomes that change one), counted when it was decided. Times are UTC. Every query reads a
time range through the index on its timestamp; days and 10-minute slots are prefixes of the
ISO-8601 text (`substr`, the same on every engine), medians are computed here.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

from poller.ates.outcomes import TICKET_OUTCOMES
from poller.store.browse import rows
from poller.store.database import iso
from poller.store.engine import Engine

ALERTS = tuple(outcome.value for outcome in TICKET_OUTCOMES)
_ALERT = f"m.outcome IN ({', '.join(repr(o) for o in ALERTS)})"
SLOT_MINUTES = 10  # an alert storm: more than N alerts in one 10-minute slot
CLEARED_ROWS = 100_000  # time to clear: the most recently completed tickets read at most
OTHERS = "(others)"


def _names(db: Engine, table: str, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    return {r["id"]: r["name"] for r in rows(
        db, f"SELECT id, name FROM {table} WHERE id IN ({marks})", sorted(ids))}


def _day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def alerts_per_day(db: Engine, now: datetime, days: int = 30,
                   stacks: int = 8) -> dict[str, object]:
    """Return the alerts of each of the last DAYS days (today included) per organization: the
    `stacks` busiest organizations each, the rest as OTHERS; and the total per day."""
    first = _day(now) - timedelta(days=days - 1)
    labels = [(first + timedelta(days=n)).date().isoformat() for n in range(days)]
    found = rows(db, f"""
        SELECT substr(m.created, 1, 10) AS day, t.organization_id AS organization,
               count(*) AS alerts
        FROM processed_message m JOIN ticket t ON t.id = m.ticket_id
        WHERE m.created >= ? AND {_ALERT}
        GROUP BY substr(m.created, 1, 10), t.organization_id""", (iso(first),))
    by_org: dict[int, dict[str, int]] = {}
    for r in found:
        by_org.setdefault(r["organization"], {})[r["day"]] = int(r["alerts"])
    ranked = sorted(by_org, key=lambda o: (-sum(by_org[o].values()), o))
    names = _names(db, "organization", set(ranked[:stacks]))
    series = [{"organization": names.get(o, f"#{o}"),
               "alerts": [by_org[o].get(day, 0) for day in labels]} for o in ranked[:stacks]]
    rest = [sum(by_org[o].get(day, 0) for o in ranked[stacks:]) for day in labels]
    if any(rest):
        series.append({"organization": OTHERS, "alerts": rest})
    totals = [sum(s["alerts"][n] for s in series) for n in range(days)]
    return {"days": labels, "series": series, "total": totals}


def noisiest(db: Engine, now: datetime, days: int = 7,
             top: int = 10) -> dict[str, object]:
    """Return the `top` devices and organizations with the most alerts in the last DAYS days
    (most first, then by name)."""
    since = iso(now - timedelta(days=days))
    out: dict[str, object] = {"days": days}
    for kind, column in (("devices", "device_id"), ("organizations", "organization_id")):
        found = rows(db, f"""
            SELECT t.{column} AS id, count(*) AS alerts
            FROM processed_message m JOIN ticket t ON t.id = m.ticket_id
            WHERE m.created >= ? AND {_ALERT} AND t.{column} IS NOT NULL
            GROUP BY t.{column} ORDER BY count(*) DESC, t.{column} LIMIT ?""", (since, top))
        ids = {r["id"] for r in found}
        if kind == "devices":
            marks = ", ".join("?" * len(ids)) or "NULL"
            names = {r["id"]: f"{r['name']} ({r['organization']})" for r in rows(db, f"""
                SELECT d.id, d.name, o.name AS organization FROM device d
                JOIN organization o ON o.id = d.organization_id WHERE d.id IN ({marks})""",
                sorted(ids))}
        else:
            names = _names(db, "organization", ids)
        out[kind] = [{"name": names.get(r["id"], f"#{r['id']}"), "alerts": int(r["alerts"])}
                     for r in found]
    return out


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) == 1:
        return values[0], values[0], values[0]
    low, median, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, median, high


def time_to_clear(db: Engine, now: datetime, days: int = 30,
                  top: int = 15) -> dict[str, object]:
    """Return, per organization (the `top` with the most), how many hours the tickets
    completed in the last DAYS days took from created to completed: median, quartiles (the
    spread of the middle half), shortest and longest."""
    found = rows(db, """
        SELECT t.organization_id AS organization, t.created, t.completed FROM ticket t
        WHERE t.completed >= ? ORDER BY t.completed DESC LIMIT ?""",
        (iso(now - timedelta(days=days)), CLEARED_ROWS))
    hours: dict[int, list[float]] = {}
    for r in found:
        taken = (datetime.fromisoformat(r["completed"]) - datetime.fromisoformat(r["created"]))
        hours.setdefault(r["organization"], []).append(max(taken.total_seconds(), 0) / 3600)
    ranked = sorted(hours, key=lambda o: (-len(hours[o]), o))[:top]
    names = _names(db, "organization", set(ranked))
    out = []
    for org in ranked:
        values = sorted(hours[org])
        low, median, high = _quartiles(values)
        out.append({"organization": names.get(org, f"#{org}"), "tickets": len(values),
                    "median": round(median, 2), "q1": round(low, 2), "q3": round(high, 2),
                    "min": round(values[0], 2), "max": round(values[-1], 2)})
    return {"days": days, "unit": "hours", "organizations": out}


def _slot(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    return moment - timedelta(minutes=moment.minute % SLOT_MINUTES)


def storms(db: Engine, now: datetime, threshold: int,
           hours: int = 24) -> dict[str, object]:
    """Return the alerts per 10-minute slot of the last HOURS hours (the current slot last),
    the slots with more than `threshold` alerts (storms), and whether one is under way (the
    current or the previous slot is a storm)."""
    last = _slot(now)
    count = hours * 60 // SLOT_MINUTES
    first = last - timedelta(minutes=SLOT_MINUTES * (count - 1))
    # "2026-12-06T10:4" is the slot 10:40-10:50: the first 15 characters of the timestamp
    found = {r["slot"]: int(r["alerts"]) for r in rows(db, f"""
        SELECT substr(m.created, 1, 15) AS slot, count(*) AS alerts FROM processed_message m
        WHERE m.created >= ? AND {_ALERT} GROUP BY substr(m.created, 1, 15)""", (iso(first),))}
    slots = [first + timedelta(minutes=SLOT_MINUTES * n) for n in range(count)]
    alerts = [found.get(iso(slot)[:15], 0) for slot in slots]
    labels = [slot.strftime("%Y-%m-%dT%H:%MZ") for slot in slots]
    marked = [{"slot": label, "alerts": n} for label, n in zip(labels, alerts, strict=True)
              if n > threshold]
    return {"threshold": threshold, "minutes": SLOT_MINUTES, "slots": labels, "alerts": alerts,
            "storms": marked, "under_way": any(n > threshold for n in alerts[-2:])}
