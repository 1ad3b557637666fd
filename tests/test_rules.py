"""The ATES rules against an in-memory directory: no database, no mailbox."""

from __future__ import annotations

from dataclasses import replace

import pytest

from poller.ates.decision import TicketFields
from poller.ates.directory import ContactMatch, DeviceMatch, Earlier, TicketRef
from poller.ates.outcomes import FLAG, NOTHING, Outcome, Step, StepKind
from poller.ates.policy import (
    AtesSettings,
    LimitSettings,
    MailboxSettings,
    TicketSettings,
)
from poller.ates.reading import refused_by_server, too_large
from poller.ates.rules import attachment_budget, authenticate, decide, decide_alert
from poller.ates.token import AtesToken, Sourced
from poller.mail.parsed import Attachment
from testkit.rules import LOCAL, Directory, alert, policy, reading
from testkit.support import PW

KASEYA = "Kaseya"


def test_authenticate_accepts_any_configured_password_and_checks_id():
    settings = AtesSettings(passwords=("old", PW), id="acmemsp.com")
    assert authenticate(AtesToken(pw=PW, id="AcmeMSP.com"), settings) is None
    assert "PW" in authenticate(AtesToken(pw="wrong", id="acmemsp.com"), settings)
    assert "ID" in authenticate(AtesToken(pw=PW, id="other.com"), settings)


def test_wrong_password_is_quarantined_and_the_reason_does_not_echo_it():
    decision = decide_alert(alert(pw="guess"), Directory(), policy())
    assert decision.outcome is Outcome.QUARANTINED
    assert "guess" not in decision.reason and PW not in decision.reason


def test_customer_id_maps_to_organization_through_udf():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Client"},
                  org_udfs={("Kaseya Customer ID", "100"): [7]})
    decision = decide_alert(alert(customer_id=Sourced(KASEYA, "100")), d, policy())
    assert decision.outcome is Outcome.CREATED
    assert decision.organization_id == 7
    assert decision.notes == ()


def test_same_customer_id_from_another_source_does_not_match():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Client"},
                  org_udfs={("Kaseya Customer ID", "100"): [7]})
    decision = decide_alert(alert(customer_id=Sourced("Nagios", "100")), d, policy())
    assert decision.organization_id == LOCAL
    assert "Nagios Customer ID" in decision.notes[0]


def test_several_matching_organizations_fall_back_to_local_with_a_note():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "A", 8: "B"},
                  org_udfs={("Kaseya Customer ID", "100"): [7, 8]})
    decision = decide_alert(alert(customer_id=Sourced(KASEYA, "100")), d, policy())
    assert decision.organization_id == LOCAL
    assert "2 organizations" in decision.notes[0]


def test_customer_name_then_email_fields_in_order():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Smith & Sons", 8: "Other"},
                  contacts={"jdoe@x.com": [ContactMatch(1, 8, 2), ContactMatch(2, 7, 3)]})
    by_name = decide_alert(alert(customer="Smith & Sons"), d, policy())
    assert by_name.organization_id == 7
    by_email = decide_alert(alert(email="JDoe@x.com"), d, policy())
    assert by_email.organization_id == 8  # e-mail 2 is tried before e-mail 3
    assert by_email.contact_id == 1


def test_unknown_email_with_contact_creates_contact_only_in_a_matched_organization():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Client"})
    matched = decide_alert(alert(customer="Client", email="fred@client.com", contact="Fred Jones"), d,
                     policy())
    assert matched.new_contact is not None
    assert (matched.new_contact.first_name, matched.new_contact.last_name) == ("Fred", "Jones")
    unmatched = decide_alert(alert(email="fred@client.com", contact="Fred Jones"), d, policy())
    assert unmatched.new_contact is None
    assert unmatched.organization_id == LOCAL


def test_unknown_email_without_contact_adds_a_note():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Client"})
    decision = decide_alert(alert(customer="Client", email="who@client.com"), d, policy())
    assert decision.contact_id is None and decision.new_contact is None
    assert any("who@client.com" in n for n in decision.notes)


def test_device_by_device_id_or_guid_and_unknown_device_note():
    d = Directory(devices={("Kaseya Device ID", "123"): [DeviceMatch(5, LOCAL)],
                           ("Kaseya Agent GUID", "g-1"): [DeviceMatch(6, LOCAL)]})
    assert decide_alert(alert(device_id=Sourced(KASEYA, "123")), d, policy()).device_id == 5
    assert decide_alert(alert(device_guid=Sourced(KASEYA, "g-1")), d, policy()).device_id == 6
    unknown = decide_alert(alert(device_id=Sourced(KASEYA, "999")), d, policy())
    assert unknown.device_id is None
    assert any("999" in n for n in unknown.notes)


def test_same_alert_id_in_same_organization_appends():
    d = Directory(open_tickets={(LOCAL, "Kaseya Alert ID", "8932"): [41]})
    decision = decide_alert(alert(alert_id=Sourced(KASEYA, "8932")), d, policy())
    assert decision.outcome is Outcome.APPENDED
    assert decision.ticket_id == 41


def test_same_alert_id_in_another_organization_creates():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Client"},
                  org_udfs={("Kaseya Customer ID", "100"): [7]},
                  open_tickets={(LOCAL, "Kaseya Alert ID", "8932"): [41]})
    decision = decide_alert(alert(customer_id=Sourced(KASEYA, "100"), alert_id=Sourced(KASEYA, "8932")),
                      d, policy())
    assert decision.outcome is Outcome.CREATED


def test_action_new_creates_even_for_a_duplicate():
    d = Directory(open_tickets={(LOCAL, "Kaseya Alert ID", "8932"): [41]})
    decision = decide_alert(alert(alert_id=Sourced(KASEYA, "8932")), d, policy(action="new"))
    assert decision.outcome is Outcome.CREATED
    assert ("Kaseya", "Alert ID", "8932") in decision.ticket_udfs


def test_criteria_switch_off_alert_id_matching():
    d = Directory(open_tickets={(LOCAL, "Kaseya Alert ID", "8932"): [41]})
    decision = decide_alert(alert(alert_id=Sourced(KASEYA, "8932")), d,
                      policy(criteria=("ticket_number",)))
    assert decision.outcome is Outcome.CREATED


def test_ticket_id_is_the_key_only_without_alert_id():
    d = Directory(open_tickets={(LOCAL, "Kaseya Ticket ID", "T9"): [42]})
    only_ticket = decide_alert(alert(ticket_id=Sourced(KASEYA, "T9")), d, policy())
    assert only_ticket.outcome is Outcome.APPENDED and only_ticket.ticket_id == 42
    both = decide_alert(alert(ticket_id=Sourced(KASEYA, "T9"), alert_id=Sourced(KASEYA, "1")), d,
                  policy())
    assert both.outcome is Outcome.CREATED


def test_ticket_number_without_organization_targets_that_ticket():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Client"},
                  numbers={"T20060213.0045": TicketRef(9, "T20060213.0045", 7, "New")})
    decision = decide_alert(alert(ticket_number="T20060213.0045"), d, policy())
    assert decision.outcome is Outcome.APPENDED
    assert (decision.ticket_id, decision.organization_id) == (9, 7)


def test_ticket_number_of_another_organization_or_complete_ticket_is_not_used():
    d = Directory(orgs={LOCAL: "Acme MSP", 7: "Client", 8: "Other"},
                  numbers={"T1": TicketRef(9, "T1", 8, "New"), "T2": TicketRef(10, "T2", 7,
                                                                               "Complete")})
    other = decide_alert(alert(customer="Client", ticket_number="T1"), d, policy())
    assert other.outcome is Outcome.CREATED and other.organization_id == 7
    complete = decide_alert(alert(ticket_number="T2"), d, policy())
    assert complete.outcome is Outcome.CREATED
    assert any("Complete" in n for n in complete.notes)


def test_clear_completes_the_open_ticket_and_a_lone_clear_is_skipped():
    d = Directory(open_tickets={(LOCAL, "Kaseya Alert ID", "8932"): [41]})
    cleared = decide_alert(alert("RESOLVED: CPU high on SRV1", alert_id=Sourced(KASEYA, "8932")), d,
                     policy())
    assert cleared.outcome is Outcome.COMPLETED and cleared.ticket_id == 41
    lone = decide_alert(alert("RESOLVED: CPU high on SRV1", alert_id=Sourced(KASEYA, "1")), d, policy())
    assert lone.outcome is Outcome.SKIPPED
    assert "no open ticket" in lone.reason


@pytest.mark.parametrize("title", ["Cleared: disk", "Alert resolved", "RECOVERY host up",
                                   "Host recovered", "CLEAR - ping SRV1", "Recovery: CPU"])
def test_default_clear_pattern_recognises_common_words(title):
    d = Directory(open_tickets={(LOCAL, "Kaseya Alert ID", "1"): [3]})
    assert decide_alert(alert(title, alert_id=Sourced(KASEYA, "1")), d, policy()).outcome is \
        Outcome.COMPLETED


@pytest.mark.parametrize("title", ["Disk space low on C:", "CRITICAL: service check not OK",
                                   "OK to ignore? backup job failed", "Disk clearance low",
                                   "Unresolved DNS name", "Recovering from low memory"])
def test_default_clear_pattern_leaves_ordinary_alerts_alone(title):
    d = Directory(open_tickets={(LOCAL, "Kaseya Alert ID", "1"): [3]})
    decision = decide_alert(alert(title, alert_id=Sourced(KASEYA, "1")), d, policy())
    assert decision.outcome is Outcome.APPENDED


def test_a_mail_without_fingerprint_is_never_taken_for_an_earlier_one():
    d = Directory(delivered={"f1": Earlier(1, 3)})
    assert decide(reading(alert(), fingerprint="f1"), d, policy()).outcome is Outcome.DUPLICATE
    assert decide(reading(alert(), fingerprint=None), d, policy()).outcome is Outcome.CREATED


def test_token_repr_never_shows_the_password():
    token = AtesToken(pw=PW, id="acmemsp.com")
    assert PW not in repr(token)
    assert PW not in str(alert(pw=PW))
    assert "pw" not in token.public()



# -- what every mail gets: no token, unreadable, the same mail twice, the mailbox step ----------

MOVE_ALL = MailboxSettings(on_success="move", processed_folder="Done", on_no_token="move",
                           no_token_folder="Other", quarantine_folder="Q")


def test_mail_without_token_is_skipped_and_left_or_moved_as_configured():
    left = decide(reading(problem="no <Autotask> token in the mail", no_token=True), Directory(),
                  policy())
    assert (left.outcome, left.step) == (Outcome.SKIPPED, NOTHING)
    moved = decide(reading(problem="no token", no_token=True), Directory(), policy(MOVE_ALL))
    assert moved.step == Step(StepKind.MOVE, "Other")


def test_unreadable_mail_is_quarantined_with_its_reason():
    decision = decide(reading(problem="unparseable MIME: nested too deeply"), Directory(),
                      policy(MOVE_ALL))
    assert decision.outcome is Outcome.QUARANTINED
    assert decision.reason == "unparseable MIME: nested too deeply"
    assert decision.step == Step(StepKind.MOVE, "Q")


def test_the_same_mail_again_is_a_duplicate_of_the_first_and_is_flagged():
    d = Directory(delivered={"f1": Earlier(id=3, ticket_id=41)})
    again = decide(reading(alert(alert_id=Sourced(KASEYA, "1"))), d, policy())
    assert (again.outcome, again.ticket_id, again.step) == (Outcome.DUPLICATE, 41, FLAG)
    other = decide(reading(alert(alert_id=Sourced(KASEYA, "1")), fingerprint="f2"), d, policy())
    assert other.outcome is Outcome.CREATED


def test_decided_mail_is_flagged_or_moved_to_the_processed_folder():
    assert decide(reading(alert()), Directory(), policy()).step == FLAG
    assert decide(reading(alert()), Directory(), policy(MOVE_ALL)).step == Step(StepKind.MOVE, "Done")


def test_mail_that_was_never_read_is_quarantined_saying_why():
    decision = decide(too_large(5000, 4096), Directory(), policy(MOVE_ALL))
    assert (decision.outcome, decision.step) == (Outcome.QUARANTINED, Step(StepKind.MOVE, "Q"))
    assert "5000 bytes" in decision.reason and "4096" in decision.reason
    refused = decide(refused_by_server("NO [SERVERBUG] cannot read"), Directory(), policy())
    assert refused.outcome is Outcome.QUARANTINED
    assert refused.reason == "the server refused to return it: NO [SERVERBUG] cannot read"


def test_step_is_written_and_read_back_as_the_log_column_says():
    for step in (FLAG, NOTHING, Step(StepKind.MOVE, "ATES/Processed: done")):
        assert Step.parse(str(step)) == step


def test_attachments_are_kept_in_order_up_to_the_budget_and_the_rest_get_a_note():
    files = tuple(Attachment(f"f{i}.bin", "application/octet-stream", b"x" * size)
                  for i, size in enumerate((400, 700, 300, 500)))
    kept, refused = attachment_budget(files, 1000)
    assert [a.filename for a in kept] == ["f0.bin", "f2.bin"]
    assert len(refused) == 2 and "f1.bin (700 bytes)" in refused[0] and "1000" in refused[0]


def test_new_and_appended_alerts_carry_the_attachments_within_the_budget():
    files = (Attachment("small.txt", "text/plain", b"a" * 10),
             Attachment("big.iso", "application/octet-stream", b"b" * 100))
    decision = decide_alert(alert(attachments=files), Directory(),
                            policy(limits=LimitSettings(max_attachment_bytes=50)))
    assert [a.filename for a in decision.attachments] == ["small.txt"]
    assert "big.iso" in decision.refused_attachments[0]


# -- what the receiving mailbox gives its tickets -------------------------------------------

def test_a_new_ticket_gets_the_mailbox_fields_and_the_token_sub_issue():
    tickets = TicketSettings(queue="Level I Support", priority="High", source="Email",
                             issue_type="Hardware")
    decision = decide_alert(alert(sub_issue="Disk"), Directory(),
                            replace(policy(), tickets=tickets))
    assert decision.outcome is Outcome.CREATED
    assert decision.fields == TicketFields(queue="Level I Support", priority="High",
                                           source="Email", issue_type="Hardware",
                                           sub_issue="Disk")


def test_the_documented_defaults_and_no_sub_issue_without_one_in_the_token():
    decision = decide_alert(alert(), Directory(), policy())
    assert decision.fields == TicketFields(queue="Monitoring Alert", priority="Medium",
                                           source="Monitoring Alert", issue_type=None,
                                           sub_issue=None)


def test_a_duplicate_keeps_the_fields_its_ticket_was_created_with():
    d = Directory(open_tickets={(LOCAL, "Kaseya Alert ID", "1"): [5]})
    decision = decide_alert(alert(alert_id=Sourced(KASEYA, "1"), sub_issue="Other"), d,
                            replace(policy(), tickets=TicketSettings(queue="Elsewhere")))
    assert decision.outcome is Outcome.APPENDED and decision.ticket_id == 5
    assert decision.fields == TicketFields()
