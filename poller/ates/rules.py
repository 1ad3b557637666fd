"""The ATES rules: (what a mail says, what the store knows, the policy) → Decision.

The store is reached only through the Directory protocol, whose methods are plain look-ups, so
the rules are tested with an in-memory directory and no database.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from poller.ates import udf
from poller.ates.decision import Decision, NewContact, TicketFields
from poller.ates.lookups import customer_key, device_keys, duplicate_key
from poller.ates.outcomes import FLAG, NOTHING, STATUS_COMPLETE, Outcome, Purpose, Step, StepKind
from poller.ates.policy import AtesSettings, MailboxSettings, Policy, TicketSettings
from poller.ates.replies import answered, arrived, noted
from poller.mail.parsed import FORWARDED_TYPES, Attachment, ParsedMessage
from poller.mail.quoting import reply_prefix

if TYPE_CHECKING:  # types only: the worker decides without loading the token reader
    from poller.ates.alert import Alert
    from poller.ates.directory import Directory, TicketRef
    from poller.ates.expected import Expectation
    from poller.ates.reading import Reading
    from poller.ates.token import AtesToken


def decide(reading: Reading, directory: Directory, policy: Policy) -> Decision:
    """Return what to do with one mail that was read; never raises for a bad mail.

    A mail that cannot be read (or was not: too large, refused by the server) is quarantined.
    A mail without a token of its sender's own that answers a ticket is a reply: a note on that
    ticket; the mail an [[expect]] entry waits for is expected mail. Otherwise a mail without a
    token is skipped (and left or moved as [mailbox] on_no_token says), the same mail
    delivered again is a duplicate of the first, and an alert goes through the rules below.
    """
    mailbox = policy.mailbox
    alert = reading.alert
    if alert is None and not reading.no_token:
        return quarantined(reading.problem, policy)
    borrowed = alert is not None and not_the_senders(alert)
    if alert is None or borrowed:
        ticket, how = answered(reading, directory)
        if ticket is not None:
            return noted(reading, ticket, how, directory, _done(mailbox))
    message = reading.message
    if (alert is None or alert.rule) and not borrowed and message is not None:
        entry = _expected_by(policy, message)
        if entry is not None and not (reply_prefix(message.subject)
                                      or message.content_type in FORWARDED_TYPES):
            return arrived(reading, entry, directory, _done(mailbox))
    if alert is None:
        return Decision(Outcome.SKIPPED, plan(Purpose.NO_TOKEN, mailbox), reason=reading.problem)
    earlier = (directory.delivered_before(reading.fingerprint)
               if reading.fingerprint is not None else None)
    if earlier is not None:
        return Decision(Outcome.DUPLICATE, _done(mailbox),
                        reason="the same mail was already processed", ticket_id=earlier.ticket_id)
    return decide_alert(alert, directory, policy)


def _expected_by(policy: Policy, message: ParsedMessage) -> Expectation | None:
    """Return the [[expect]] entry the mail is the expected mail of (loaded only when there
    are entries: their patterns are RE2)."""
    if not policy.expectations:
        return None
    from poller.ates.expected import expected_by

    return expected_by(policy.expectations, message)


def quarantined(reason: str, policy: Policy) -> Decision:
    """Return the decision for a mail that cannot be turned into a ticket."""
    return Decision(Outcome.QUARANTINED, plan(Purpose.QUARANTINE, policy.mailbox), reason=reason)


def plan(purpose: Purpose, mailbox: MailboxSettings) -> Step:
    """Return the mailbox step for a purpose under the [mailbox] settings."""
    if purpose is Purpose.QUARANTINE:
        return Step(StepKind.MOVE, mailbox.quarantine_folder, purpose)
    if purpose is Purpose.NO_TOKEN:
        if mailbox.on_no_token == "leave":
            return NOTHING
        return Step(StepKind.MOVE, mailbox.no_token_folder, purpose)
    return FLAG if mailbox.on_success == "flag" else Step(StepKind.MOVE, mailbox.processed_folder)


def not_the_senders(alert: Alert) -> str | None:
    """Return why the alert's token is not the sender's own, or None when it is.

    A reply that quotes an alert (in `>` lines, below what a mail client writes above a quote
    or a forward, in a cited HTML block, or under a reply or forward subject prefix; see
    poller.mail.quoting), and a mail that is a whole forwarded message,
    carry someone else's token, PW included: a person is speaking, not the monitoring system.
    Such mail creates and appends nothing, and goes where mail without a token goes.
    """
    if alert.message.content_type in FORWARDED_TYPES:
        return (f"the mail is a forwarded message ({alert.message.content_type}): its token is "
                "not the sender's own, so no ticket")
    if alert.quoted:
        return (f"the token is {alert.quoted}, as in a reply or a forward: not the sender's "
                "own, so no ticket")
    prefix = reply_prefix(alert.message.subject)
    if prefix:
        return (f"the subject ({prefix}:) says the mail is a reply or a forward: its "
                "token is not the sender's own, so no ticket")
    return None


def _done(mailbox: MailboxSettings) -> Step:
    """Return the step for a mail the rules are done with: flag, or move to processed_folder."""
    return plan(Purpose.DONE, mailbox)


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


def decide_alert(alert: Alert, directory: Directory, policy: Policy) -> Decision:
    """Apply the ATES rules to one alert, authenticated or not; return the Decision."""
    borrowed = not_the_senders(alert)
    if borrowed:
        return Decision(Outcome.SKIPPED, plan(Purpose.NO_TOKEN, policy.mailbox), reason=borrowed)
    token = alert.token
    # a rule's alert has no PW: the rule took it (authenticated, if the rule says so)
    refused = None if alert.rule else authenticate(token, policy.ates)
    if refused:
        return quarantined(refused, policy)

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

    step = _done(policy.mailbox)
    kept, refused_files = attachment_budget(alert.message.attachments,
                                            policy.limits.max_attachment_bytes)
    common = dict(
        organization_id=organization_id,
        contact_id=contact_id,
        new_contact=new_contact,
        device_id=device_id,
        notes=tuple(notes),
        attachments=kept,
        refused_attachments=refused_files,
    )
    if alert.clears if alert.clears is not None else policy.clear_re.search(alert.title):
        if target_id is None:
            return Decision(Outcome.SKIPPED, step,
                            reason="clear alert with no open ticket to complete")
        return Decision(Outcome.COMPLETED, step, reason="clear alert", ticket_id=target_id,
                        **common)
    if target_id is not None and policy.duplicates.action == "note":
        return Decision(Outcome.APPENDED, step, reason="duplicate alert", ticket_id=target_id,
                        **common)
    reason = "duplicate alert, action = new" if target_id is not None else "new alert"
    key = duplicate_key(token, policy) if policy.duplicates.action == "note" else None
    return Decision(Outcome.CREATED, step, reason=reason, ticket_udfs=_ticket_udfs(token),
                    fields=ticket_fields(policy.tickets, token),
                    open_key=None if key is None else f"{key[0]}={key[1]}", **common)


def ticket_fields(mailbox: TicketSettings, token: AtesToken) -> TicketFields:
    """Return what a new ticket gets: queue, priority, source and issue type from the receiving
    mailbox's [tickets] settings, the sub-issue type from the token's SubIssue."""
    return TicketFields(queue=mailbox.queue or None, priority=mailbox.priority or None,
                        source=mailbox.source or None, issue_type=mailbox.issue_type or None,
                        sub_issue=token.sub_issue)


def attachment_budget(files: tuple[Attachment, ...], max_bytes: int
                      ) -> tuple[tuple[Attachment, ...], tuple[str, ...]]:
    """Return the attachments stored with the ticket (in order, up to max_bytes per mail) and a
    note for each one left in the original mail."""
    kept: list[Attachment] = []
    refused: list[str] = []
    budget = max_bytes
    for item in files:
        if item.size > budget:
            refused.append(f"{item.filename} ({item.size} bytes) exceeds the attachment limit "
                           f"of {max_bytes} bytes per mail; it remains in the original mail.")
            continue
        budget -= item.size
        kept.append(item)
    return tuple(kept), tuple(refused)


def _has_organization_data(token: AtesToken) -> bool:
    return bool(token.customer_id or token.customer or token.email)


def _ticket_udfs(token: AtesToken) -> tuple[tuple[str, str, str], ...]:
    udfs = []
    if token.alert_id:
        udfs.append((token.alert_id.source, udf.ALERT_ID, token.alert_id.value))
    if token.ticket_id:
        udfs.append((token.ticket_id.source, udf.TICKET_ID, token.ticket_id.value))
    return tuple(udfs)


def _organization(token: AtesToken, directory: Directory) -> tuple[int, str | None, bool]:
    """Return (organization id, note or None, whether a real match was found)."""
    tried: list[str] = []
    steps: list[tuple[str, list[int]]] = []
    customer = customer_key(token)
    if customer is not None:
        what = f"{customer[0]} {customer[1]!r}"
        steps.append((what, directory.organizations_by_udf(*customer)))
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
    keys = device_keys(token)
    for label, value in keys:
        found = directory.devices_by_udf(label, value)
        in_org = [d for d in found if d.organization_id == organization_id]
        chosen = in_org or found
        if len(chosen) == 1:
            return chosen[0].id, None
    if not keys:
        return None, None
    wanted = " / ".join(f"{label} {value!r}" for label, value in keys)
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
    if ref.status == STATUS_COMPLETE:
        notes.append(f"Ticket {token.ticket_number} named by the token is already Complete.")
        return None
    return ref


def _open_ticket_by_key(
    token: AtesToken, directory: Directory, policy: Policy, organization_id: int
) -> int | None:
    key = duplicate_key(token, policy)
    if key is None:
        return None
    found = directory.open_tickets_by_udf(organization_id, *key)
    return found[0] if found else None
