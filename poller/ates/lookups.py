"""The UDF keys the rules look things up by, and the look-ups decide will make for a chunk of
mail, known from the mail alone before it runs.

The keys are made here only, for decide (poller.ates.rules) and for the store, which answers a
whole chunk's look-ups with one query of each kind instead of a few per mail
(poller.store.ahead).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from poller.ates import udf

if TYPE_CHECKING:  # types only: the worker decides without loading the token reader
    from poller.ates.policy import Policy
    from poller.ates.reading import Reading
    from poller.ates.token import AtesToken

UdfKey = tuple[str, str]  # (UDF label, value)


def customer_key(token: AtesToken) -> UdfKey | None:
    """Return the (label, value) that finds the token's organization by UDF, if it names one."""
    if not token.customer_id:
        return None
    return udf.label(token.customer_id.source, udf.CUSTOMER_ID), token.customer_id.value


def device_keys(token: AtesToken) -> list[UdfKey]:
    """Return the (label, value)s that find the token's device, in the order they are tried."""
    keys = []
    if token.device_id:
        keys.append((udf.label(token.device_id.source, udf.DEVICE_ID), token.device_id.value))
    if token.device_guid:
        keys.append((udf.label(token.device_guid.source, udf.AGENT_GUID),
                     token.device_guid.value))
    return keys


def duplicate_key(token: AtesToken, policy: Policy) -> UdfKey | None:
    """Return (UDF label, value) that finds an open ticket of the same alert, if any applies."""
    criteria = policy.duplicates.criteria
    if token.alert_id and "alert_id" in criteria:
        return udf.label(token.alert_id.source, udf.ALERT_ID), token.alert_id.value
    if token.ticket_id and not token.alert_id and "external_ticket_id" in criteria:
        return udf.label(token.ticket_id.source, udf.TICKET_ID), token.ticket_id.value
    return None


@dataclass
class Lookups:
    """What decide will ask the store about a chunk of mail: earlier deliveries by
    fingerprint, organizations, devices and open tickets by (UDF label, value), contacts by
    e-mail address (as contacts_by_email takes it) and organizations by name."""

    fingerprints: set[str] = field(default_factory=set)
    organizations: set[UdfKey] = field(default_factory=set)
    devices: set[UdfKey] = field(default_factory=set)
    open_tickets: set[UdfKey] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)


def lookups_of(readings: Iterable[Reading], policy: Policy) -> Lookups:
    """Return the look-ups decide makes for the alerts among readings (a few more than it
    makes, e.g. for an alert it quarantines, cost nothing but a key in a query)."""
    wanted = Lookups()
    for reading in readings:
        alert = reading.alert
        if alert is None:
            continue
        if reading.fingerprint is not None:
            wanted.fingerprints.add(reading.fingerprint)
        token = alert.token
        customer = customer_key(token)
        if customer is not None:
            wanted.organizations.add(customer)
        wanted.devices.update(device_keys(token))
        duplicate = duplicate_key(token, policy)
        if duplicate is not None:
            wanted.open_tickets.add(duplicate)
        if token.email:
            wanted.emails.add(token.email)
        if token.customer:
            wanted.names.add(token.customer)
    return wanted
