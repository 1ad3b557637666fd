"""ATES processing rules: (Alert, what the store knows, policy) → Decision. Pure.

The store is reached only through the Directory protocol, whose methods are plain look-ups, so
the rules are tested with an in-memory directory and no database.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from poller.alert import Alert
from poller.atestoken import AtesToken, Sourced
from poller.config import AtesSettings, DuplicateSettings

COMPLETE = "Complete"


class Outcome(StrEnum):
    CREATED = "created"
    APPENDED = "appended"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class ContactMatch:
    id: int
    organization_id: int
    field: int  # 1, 2 or 3: which of the contact's e-mail fields matched


@dataclass(frozen=True)
class DeviceMatch:
    id: int
    organization_id: int


@dataclass(frozen=True)
class TicketRef:
    id: int
    number: str
    organization_id: int
    status: str


class Directory(Protocol):
    """What the rules may ask the store. Every method is a read."""

    def local_organization_id(self) -> int: ...
    def organization_name(self, organization_id: int) -> str: ...
    def organizations_by_udf(self, label: str, value: str) -> list[int]: ...
    def organizations_by_name(self, name: str) -> list[int]: ...
    def contacts_by_email(self, email: str) -> list[ContactMatch]: ...
    def devices_by_udf(self, label: str, value: str) -> list[DeviceMatch]: ...
    def open_tickets_by_udf(self, organization_id: int, label: str, value: str) -> list[int]: ...
    def ticket_by_number(self, number: str) -> TicketRef | None: ...


@dataclass(frozen=True)
class NewContact:
    first_name: str
    last_name: str
    email: str


@dataclass(frozen=True)
class Decision:
    """What to do with one mail. For created/appended/completed the ticket fields are set."""

    outcome: Outcome
    reason: str = ""
    organization_id: int | None = None
    contact_id: int | None = None
    new_contact: NewContact | None = None
    device_id: int | None = None
    ticket_id: int | None = None
    ticket_udfs: tuple[tuple[str, str, str], ...] = ()  # (source, kind, value)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    ates: AtesSettings
    duplicates: DuplicateSettings

    @property
    def clear_re(self) -> re.Pattern[str]:
        return _compiled(self.duplicates.clear_pattern)


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern not in _PATTERNS:
        _PATTERNS[pattern] = re.compile(pattern)
    return _PATTERNS[pattern]


def udf_label(source: str, kind: str) -> str:
    """Return the UDF label ATES uses, e.g. 'Kaseya Customer ID'."""
    return f"{source} {kind}"


def authenticate(token: AtesToken, ates: AtesSettings) -> str | None:
    """Return None when the token's PW (and ID, if configured) are accepted, else the reason."""
    given = token.pw.encode("utf-8")
    accepted = False
    for password in ates.passwords:
        accepted |= hmac.compare_digest(given, password.encode("utf-8"))
    if not accepted:
        return "the token's PW does not match [ates] password"
    if ates.id and (token.id or "").casefold() != ates.id.casefold():
        return "the token's ID does not match [ates] id"
    return None


def decide(alert: Alert, directory: Directory, policy: Policy) -> Decision:
    """Apply the ATES rules to one authenticated-or-not alert; always returns a Decision."""
    token = alert.token
    refused = authenticate(token, policy.ates)
    if refused:
        return Decision(Outcome.QUARANTINED, reason=refused)

    notes: list[str] = []
    target = _ticket_number_target(token, directory, policy, notes)
    if target is not None and not _has_organization_data(token):
        organization_id, org_note, matched = target.organization_id, None, True
    else:
        organization_id, org_note, matched = _organization(token, directory)
    if org_note:
        notes.append(org_note)
    if target is not None and target.organization_id != organization_id:
        notes.append(
            f"Ticket {target.number} belongs to another organization; it was not used."
        )
        target = None

    contact_id, new_contact, contact_note = _contact(token, directory, organization_id, matched)
    if contact_note:
        notes.append(contact_note)
    device_id, device_note = _device(token, directory, organization_id)
    if device_note:
        notes.append(device_note)

    if target is None:
        target_id = _open_ticket_by_key(token, directory, policy, organization_id)
    else:
        target_id = target.id

    common = dict(
        organization_id=organization_id,
        contact_id=contact_id,
        new_contact=new_contact,
        device_id=device_id,
        notes=tuple(notes),
    )
    if policy.clear_re.search(alert.title):
        if target_id is None:
            return Decision(Outcome.SKIPPED, reason="clear alert with no open ticket to complete")
        return Decision(Outcome.COMPLETED, reason="clear alert", ticket_id=target_id, **common)
    if target_id is not None and policy.duplicates.action == "note":
        return Decision(Outcome.APPENDED, reason="duplicate alert", ticket_id=target_id, **common)
    reason = "duplicate alert, action = new" if target_id is not None else "new alert"
    return Decision(Outcome.CREATED, reason=reason, ticket_udfs=_ticket_udfs(token), **common)


def _has_organization_data(token: AtesToken) -> bool:
    return bool(token.customer_id or token.customer or token.email)


def _ticket_udfs(token: AtesToken) -> tuple[tuple[str, str, str], ...]:
    udfs = []
    if token.alert_id:
        udfs.append((token.alert_id.source, "Alert ID", token.alert_id.value))
    if token.ticket_id:
        udfs.append((token.ticket_id.source, "Ticket ID", token.ticket_id.value))
    return tuple(udfs)


def _organization(token: AtesToken, directory: Directory) -> tuple[int, str | None, bool]:
    """Return (organization id, note or None, whether a real match was found)."""
    tried: list[str] = []
    steps: list[tuple[str, list[int]]] = []
    if token.customer_id:
        label = udf_label(token.customer_id.source, "Customer ID")
        what = f"{label} {token.customer_id.value!r}"
        steps.append((what, directory.organizations_by_udf(label, token.customer_id.value)))
    if token.customer:
        what = f"organization name {token.customer!r}"
        steps.append((what, directory.organizations_by_name(token.customer)))
    for what, found in steps:
        if len(found) == 1:
            return found[0], None, True
        if len(found) > 1:
            return _local(directory, f"{len(found)} organizations match {what}")
        tried.append(what)
    if token.email:
        matches = directory.contacts_by_email(token.email)
        for email_field in (1, 2, 3):
            orgs = sorted({m.organization_id for m in matches if m.field == email_field})
            if len(orgs) == 1:
                return orgs[0], None, True
            if len(orgs) > 1:
                return _local(directory, f"contacts of {len(orgs)} organizations use "
                                         f"e-mail {token.email!r}")
        tried.append(f"contact e-mail {token.email!r}")
    if not tried:
        return _local(directory, "the token names no organization")
    return _local(directory, "no organization matches " + ", nor ".join(tried))


def _local(directory: Directory, why: str) -> tuple[int, str, bool]:
    local = directory.local_organization_id()
    name = directory.organization_name(local)
    return local, f"Assigned to {name}: {why}.", False


def _contact(
    token: AtesToken, directory: Directory, organization_id: int, matched: bool
) -> tuple[int | None, NewContact | None, str | None]:
    if not token.email:
        return None, None, None
    matches = [m for m in directory.contacts_by_email(token.email)
               if m.organization_id == organization_id]
    if matches:
        return min(matches, key=lambda m: (m.field, m.id)).id, None, None
    if token.contact and matched:
        first, _, last = token.contact.strip().partition(" ")
        return None, NewContact(first_name=first, last_name=last.strip(), email=token.email), None
    return None, None, f"Contact e-mail {token.email!r} was not found in this organization."


def _device(
    token: AtesToken, directory: Directory, organization_id: int
) -> tuple[int | None, str | None]:
    keys: list[tuple[Sourced, str]] = []
    if token.device_id:
        keys.append((token.device_id, "Device ID"))
    if token.device_guid:
        keys.append((token.device_guid, "Agent GUID"))
    for key, kind in keys:
        label = udf_label(key.source, kind)
        found = directory.devices_by_udf(label, key.value)
        in_org = [d for d in found if d.organization_id == organization_id]
        chosen = in_org or found
        if len(chosen) == 1:
            return chosen[0].id, None
    if not keys:
        return None, None
    wanted = " / ".join(f"{udf_label(k.source, kind)} {k.value!r}" for k, kind in keys)
    return None, f"No device with {wanted} is known; the ticket has no device."


def _ticket_number_target(
    token: AtesToken, directory: Directory, policy: Policy, notes: list[str]
) -> TicketRef | None:
    if not token.ticket_number or "ticket_number" not in policy.duplicates.criteria:
        return None
    ref = directory.ticket_by_number(token.ticket_number)
    if ref is None:
        notes.append(f"Ticket {token.ticket_number} named by the token does not exist.")
        return None
    if ref.status == COMPLETE:
        notes.append(f"Ticket {token.ticket_number} named by the token is already Complete.")
        return None
    return ref


def _open_ticket_by_key(
    token: AtesToken, directory: Directory, policy: Policy, organization_id: int
) -> int | None:
    criteria = policy.duplicates.criteria
    key: tuple[Sourced, str] | None = None
    if token.alert_id and "alert_id" in criteria:
        key = (token.alert_id, "Alert ID")
    elif token.ticket_id and not token.alert_id and "external_ticket_id" in criteria:
        key = (token.ticket_id, "Ticket ID")
    if key is None:
        return None
    found = directory.open_tickets_by_udf(organization_id, udf_label(key[0].source, key[1]),
                                          key[0].value)
    return found[0] if found else None
