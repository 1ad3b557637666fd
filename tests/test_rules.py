"""The ATES rules against an in-memory directory: no database, no mailbox."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from poller.alert import Alert
from poller.atestoken import AtesToken, Sourced
from poller.config import AtesSettings, DuplicateSettings
from poller.message import ParsedMessage
from poller.rules import (
    ContactMatch,
    DeviceMatch,
    Outcome,
    Policy,
    TicketRef,
    authenticate,
    decide,
)

PW = "zzZ3zZ/2Z1ZzzZZZ0zoZ9z=="
LOCAL = 0


@dataclass
class Directory:
    orgs: dict[int, str] = field(default_factory=lambda: {LOCAL: "Acme MSP"})
    org_udfs: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    contacts: dict[str, list[ContactMatch]] = field(default_factory=dict)
    devices: dict[tuple[str, str], list[DeviceMatch]] = field(default_factory=dict)
    open_tickets: dict[tuple[int, str, str], list[int]] = field(default_factory=dict)
    numbers: dict[str, TicketRef] = field(default_factory=dict)

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


def alert(title: str = "CPU high on SRV1", **token_fields: object) -> Alert:
    token = AtesToken(pw=token_fields.pop("pw", PW), **token_fields)
    message = ParsedMessage(message_id="<m@x>", subject=title, sender="rmm@x", date=None,
                            text="", html="", attachments=(), defects=())
    return Alert(message=message, token=token, title=title, description="body")


def policy(**dup: object) -> Policy:
    return Policy(AtesSettings(passwords=(PW,), local_organization="Acme MSP"),
                  replace(DuplicateSettings(), **dup))


KASEYA = "Kaseya"


def test_authenticate_accepts_any_configured_password_and_checks_id():
    settings = AtesSettings(passwords=("old", PW), id="acmemsp.com")
    assert authenticate(AtesToken(pw=PW, id="AcmeMSP.com"), settings) is None
    assert "PW" in authenticate(AtesToken(pw="wrong", id="acmemsp.com"), settings)
    assert "ID" in authenticate(AtesToken(pw=PW, id="other.com"), settings)


def test_wrong_password_is_quarantined_and_the_reason_does_not_echo_it():
    decision = decide(alert(pw="guess"), Directory(), policy())
    assert decision.outcome is Outcome.QUARANTINED
    assert "guess" not in decision.reason and PW not in decision.reason


def test_customer_id_maps_to_organization_through_udf():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Client"},
                  org_udfs={("Kaseya Customer ID", "100"): [7]})
    decision = decide(alert(customer_id=Sourced(KASEYA, "100")), d, policy())
    assert decision.outcome is Outcome.CREATED
    assert decision.organization_id == 7
    assert decision.notes == ()


def test_same_customer_id_from_another_source_does_not_match():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Client"},
                  org_udfs={("Kaseya Customer ID", "100"): [7]})
    decision = decide(alert(customer_id=Sourced("Nagios", "100")), d, policy())
    assert decision.organization_id == LOCAL
    assert "Nagios Customer ID" in decision.notes[0]


def test_several_matching_organizations_fall_back_to_local_with_a_note():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "A", 8: "B"},
                  org_udfs={("Kaseya Customer ID", "100"): [7, 8]})
    decision = decide(alert(customer_id=Sourced(KASEYA, "100")), d, policy())
    assert decision.organization_id == LOCAL
    assert "2 organizations" in decision.notes[0]


def test_customer_name_then_email_fields_in_order():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Smith & Sons", 8: "Other"},
                  contacts={"jdoe@x.com": [ContactMatch(1, 8, 2), ContactMatch(2, 7, 3)]})
    by_name = decide(alert(customer="Smith & Sons"), d, policy())
    assert by_name.organization_id == 7
    by_email = decide(alert(email="JDoe@x.com"), d, policy())
    assert by_email.organization_id == 8  # e-mail 2 is tried before e-mail 3
    assert by_email.contact_id == 1


def test_unknown_email_with_contact_creates_contact_only_in_a_matched_organization():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Client"})
    matched = decide(alert(customer="Client", email="fred@client.com", contact="Fred Jones"), d,
                     policy())
    assert matched.new_contact is not None
    assert (matched.new_contact.first_name, matched.new_contact.last_name) == ("Fred", "Jones")
    unmatched = decide(alert(email="fred@client.com", contact="Fred Jones"), d, policy())
    assert unmatched.new_contact is None
    assert unmatched.organization_id == LOCAL


def test_unknown_email_without_contact_adds_a_note():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Client"})
    decision = decide(alert(customer="Client", email="who@client.com"), d, policy())
    assert decision.contact_id is None and decision.new_contact is None
    assert any("who@client.com" in n for n in decision.notes)


def test_device_by_device_id_or_guid_and_unknown_device_note():
    d = Directory(devices={("Kaseya Device ID", "123"): [DeviceMatch(5, LOCAL)],
                           ("Kaseya Agent GUID", "g-1"): [DeviceMatch(6, LOCAL)]})
    assert decide(alert(device_id=Sourced(KASEYA, "123")), d, policy()).device_id == 5
    assert decide(alert(device_guid=Sourced(KASEYA, "g-1")), d, policy()).device_id == 6
    unknown = decide(alert(device_id=Sourced(KASEYA, "999")), d, policy())
    assert unknown.device_id is None
    assert any("999" in n for n in unknown.notes)


def test_same_alert_id_in_same_organization_appends():
    d = Directory(open_tickets={(LOCAL, "Kaseya Alert ID", "8932"): [41]})
    decision = decide(alert(alert_id=Sourced(KASEYA, "8932")), d, policy())
    assert decision.outcome is Outcome.APPENDED
    assert decision.ticket_id == 41


def test_same_alert_id_in_another_organization_creates():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Client"},
                  org_udfs={("Kaseya Customer ID", "100"): [7]},
                  open_tickets={(LOCAL, "Kaseya Alert ID", "8932"): [41]})
    decision = decide(alert(customer_id=Sourced(KASEYA, "100"), alert_id=Sourced(KASEYA, "8932")),
                      d, policy())
    assert decision.outcome is Outcome.CREATED


def test_action_new_creates_even_for_a_duplicate():
    d = Directory(open_tickets={(LOCAL, "Kaseya Alert ID", "8932"): [41]})
    decision = decide(alert(alert_id=Sourced(KASEYA, "8932")), d, policy(action="new"))
    assert decision.outcome is Outcome.CREATED
    assert ("Kaseya", "Alert ID", "8932") in decision.ticket_udfs


def test_criteria_switch_off_alert_id_matching():
    d = Directory(open_tickets={(LOCAL, "Kaseya Alert ID", "8932"): [41]})
    decision = decide(alert(alert_id=Sourced(KASEYA, "8932")), d,
                      policy(criteria=("ticket_number",)))
    assert decision.outcome is Outcome.CREATED


def test_ticket_id_is_the_key_only_without_alert_id():
    d = Directory(open_tickets={(LOCAL, "Kaseya Ticket ID", "T9"): [42]})
    only_ticket = decide(alert(ticket_id=Sourced(KASEYA, "T9")), d, policy())
    assert only_ticket.outcome is Outcome.APPENDED and only_ticket.ticket_id == 42
    both = decide(alert(ticket_id=Sourced(KASEYA, "T9"), alert_id=Sourced(KASEYA, "1")), d,
                  policy())
    assert both.outcome is Outcome.CREATED


def test_ticket_number_without_organization_targets_that_ticket():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Client"},
                  numbers={"T20060213.0045": TicketRef(9, "T20060213.0045", 7, "New")})
    decision = decide(alert(ticket_number="T20060213.0045"), d, policy())
    assert decision.outcome is Outcome.APPENDED
    assert (decision.ticket_id, decision.organization_id) == (9, 7)


def test_ticket_number_of_another_organization_or_complete_ticket_is_not_used():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Client", 8: "Other"},
                  numbers={"T1": TicketRef(9, "T1", 8, "New"), "T2": TicketRef(10, "T2", 7,
                                                                               "Complete")})
    other = decide(alert(customer="Client", ticket_number="T1"), d, policy())
    assert other.outcome is Outcome.CREATED and other.organization_id == 7
    complete = decide(alert(ticket_number="T2"), d, policy())
    assert complete.outcome is Outcome.CREATED
    assert any("Complete" in n for n in complete.notes)


def test_clear_completes_the_open_ticket_and_a_lone_clear_is_skipped():
    d = Directory(open_tickets={(LOCAL, "Kaseya Alert ID", "8932"): [41]})
    cleared = decide(alert("RESOLVED: CPU high on SRV1", alert_id=Sourced(KASEYA, "8932")), d,
                     policy())
    assert cleared.outcome is Outcome.COMPLETED and cleared.ticket_id == 41
    lone = decide(alert("RESOLVED: CPU high on SRV1", alert_id=Sourced(KASEYA, "1")), d, policy())
    assert lone.outcome is Outcome.SKIPPED
    assert "no open ticket" in lone.reason


@pytest.mark.parametrize("title", ["Cleared: disk", "Alert resolved", "RECOVERY host up"])
def test_default_clear_pattern_recognises_common_words(title):
    d = Directory(open_tickets={(LOCAL, "Kaseya Alert ID", "1"): [3]})
    assert decide(alert(title, alert_id=Sourced(KASEYA, "1")), d, policy()).outcome is \
        Outcome.COMPLETED


def test_default_clear_pattern_leaves_ordinary_alerts_alone():
    d = Directory(open_tickets={(LOCAL, "Kaseya Alert ID", "1"): [3]})
    decision = decide(alert("Disk space low on C:", alert_id=Sourced(KASEYA, "1")), d, policy())
    assert decision.outcome is Outcome.APPENDED


def test_token_repr_never_shows_the_password():
    token = AtesToken(pw=PW, id="acmemsp.com")
    assert PW not in repr(token)
    assert PW not in str(alert(pw=PW))
    assert "pw" not in token.public()

