"""The ATES rules without a store: an in-memory Directory, and alerts, policies and readings
built by hand, for tests of poller.ates."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from poller.ates.alert import Alert
from poller.ates.directory import ContactMatch, DeviceMatch, Earlier, TicketRef
from poller.ates.policy import (
    AtesSettings,
    DuplicateSettings,
    LimitSettings,
    MailboxSettings,
    Policy,
)
from poller.ates.reading import Reading
from poller.ates.token import AtesToken
from poller.mail.parsed import Attachment, ParsedMessage
from testkit.support import PW

LOCAL = 0  # the local organization


@dataclass
class Directory:
    """What the store would know, in dicts (poller.ates.directory.Directory)."""

    orgs: dict[int, str] = field(default_factory=lambda: {LOCAL: "Acme MSP"})
    org_udfs: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    contacts: dict[str, list[ContactMatch]] = field(default_factory=dict)
    devices: dict[tuple[str, str], list[DeviceMatch]] = field(default_factory=dict)
    open_tickets: dict[tuple[int, str, str], list[int]] = field(default_factory=dict)
    numbers: dict[str, TicketRef] = field(default_factory=dict)
    delivered: dict[str, Earlier] = field(default_factory=dict)
    threads: dict[str, TicketRef] = field(default_factory=dict)  # Message-ID → its ticket
    missed: dict[str, TicketRef] = field(default_factory=dict)  # [[expect]] name → its ticket

    def local_organization_id(self) -> int:
        return LOCAL

    def organization_name(self, organization_id: int) -> str:
        return self.orgs[organization_id]

    def organizations_by_udf(self, label: str, value: str) -> list[int]:
        return self.org_udfs.get((label, value), [])

    def organizations_by_name(self, name: str) -> list[int]:
        return [i for i, n in self.orgs.items() if n == name]

    def contacts_by_email(self, email: str) -> list[ContactMatch]:
        return self.contacts.get(email.lower(), [])

    def devices_by_udf(self, label: str, value: str) -> list[DeviceMatch]:
        return self.devices.get((label, value), [])

    def open_tickets_by_udf(self, organization_id: int, label: str, value: str) -> list[int]:
        return self.open_tickets.get((organization_id, label, value), [])

    def ticket_by_number(self, number: str) -> TicketRef | None:
        return self.numbers.get(number)

    def delivered_before(self, fingerprint: str) -> Earlier | None:
        return self.delivered.get(fingerprint)

    def missed_ticket(self, name: str) -> TicketRef | None:
        return self.missed.get(name)

    def ticket_by_message_ids(self, message_ids: tuple[str, ...]) -> TicketRef | None:
        return next((self.threads[i] for i in message_ids if i in self.threads), None)


def alert(title: str = "CPU high on SRV1", attachments: tuple[Attachment, ...] = (),
          **token_fields: object) -> Alert:
    token = AtesToken(pw=token_fields.pop("pw", PW), **token_fields)
    message = ParsedMessage(message_id="<m@x>", subject=title, sender="rmm@x", date=None,
                            text="", html="", attachments=attachments)
    return Alert(message=message, token=token, title=title, description="body")


def policy(mailbox: MailboxSettings | None = None, limits: LimitSettings | None = None,
           **dup: object) -> Policy:
    return Policy(AtesSettings(passwords=(PW,), local_organization="Acme MSP"),
                  replace(DuplicateSettings(), **dup), mailbox or MailboxSettings(),
                  limits or LimitSettings())


def reading(alert: Alert | None = None, problem: str = "", no_token: bool = False,
            fingerprint: str | None = "f1") -> Reading:
    return Reading(alert.message if alert else None, alert, problem, no_token, fingerprint)
