"""The UDF vocabulary: the user-defined fields ATES maps token elements through.

A UDF is labelled `<source> <kind>`, e.g. "Kaseya Customer ID", so the same value from two
partner applications never matches. Each kind belongs to one kind of entity.
"""

from __future__ import annotations

CUSTOMER_ID = "Customer ID"
DEVICE_ID = "Device ID"
AGENT_GUID = "Agent GUID"
ALERT_ID = "Alert ID"
TICKET_ID = "Ticket ID"

ENTITY_OF = {
    CUSTOMER_ID: "organization",
    DEVICE_ID: "device",
    AGENT_GUID: "device",
    ALERT_ID: "ticket",
    TICKET_ID: "ticket",
}


def label(source: str, kind: str) -> str:
    """Return the UDF label ATES uses, e.g. 'Kaseya Customer ID'."""
    return f"{source} {kind}"


def kinds_of(entity: str) -> tuple[str, ...]:
    """Return the UDF kinds of an entity ('organization', 'device' or 'ticket')."""
    return tuple(kind for kind, owner in ENTITY_OF.items() if owner == entity)
