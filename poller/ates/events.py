"""Round-trip closure: the events a ticket change sends back to the monitoring side.

ATES says of TicketID that "some monitoring services also use it to enable round trip ticket
closure". The loop is closed with events: which ticket change causes which event, what a
technician's completion does, and what an event says (its JSON body) are decided here; writing
an event next to the change and delivering it are the store's and the service's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from poller.ates.outcomes import STATUS_COMPLETE, Outcome

if TYPE_CHECKING:
    from poller.ates.directory import TicketRef

CREATED = "created"
APPENDED = "appended"
COMPLETED = "completed"
NOTED = "noted"  # a reply was noted on the ticket
EVENTS = (CREATED, APPENDED, COMPLETED, NOTED)
# What `check --webhook-ping` sends: an event about no ticket.
PING = "ping"
# "by" of the events a mail causes; a technician's events carry the technician's name.
BY_ALERT = "alert"

_EVENT_OF = {Outcome.CREATED: CREATED, Outcome.APPENDED: APPENDED, Outcome.COMPLETED: COMPLETED,
             Outcome.NOTED: NOTED}


def event_of(outcome: Outcome) -> str | None:
    """Return the event a mail's outcome causes, or None for outcomes that change no ticket."""
    return _EVENT_OF.get(outcome)


@dataclass(frozen=True)
class Completion:
    """What a technician's completion adds to the ticket: a resolution note, and the event's
    note (the technician's own text, or None)."""

    title: str
    text: str
    note: str | None


def technician_completion(ticket: TicketRef, by: str, text: str | None) -> Completion | None:
    """Return what completing the ticket by hand does, or None when it is Complete already (a
    second completion changes nothing and sends nothing)."""
    if ticket.status == STATUS_COMPLETE:
        return None
    note = (text or "").strip() or None
    return Completion(title=f"Completed by {by}",
                      text=f"Completed by {by}: {note}" if note else f"Completed by {by}.",
                      note=note)


def body(delivery_id: str, event: str, occurred: str, by: str, note: str | None,
         ticket: Mapping[str, object] | None) -> str:
    """Return the JSON text of an event: id, event, occurred (ISO-8601 UTC), by ('alert' or the
    technician), note (text or None) and the ticket as it was right after the change."""
    return json.dumps({"id": delivery_id, "event": event, "occurred": occurred, "by": by,
                       "note": note, "ticket": None if ticket is None else dict(ticket)},
                      ensure_ascii=False, separators=(",", ":"))
