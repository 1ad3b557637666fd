"""What the rules may ask the store: the Directory protocol and the answers it gives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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


@dataclass(frozen=True)
class Earlier:
    """An earlier delivery of the same mail that had an effect, and the ticket it touched."""

    id: int
    ticket_id: int | None


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
    def ticket_by_message_ids(self, message_ids: tuple[str, ...]) -> TicketRef | None: ...
    def missed_ticket(self, name: str) -> TicketRef | None: ...
    def delivered_before(self, fingerprint: str) -> Earlier | None: ...
