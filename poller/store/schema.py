"""The database schema: explicit table names and plain columns, for people who use sqlite3 or
psql; the same on SQLite and PostgreSQL.

Timestamps are ISO-8601 UTC text on both engines (compared and sorted as text). UDF values are
one row per (definition, entity), indexed by (definition, value) so every look-up the rules
make is an index search.
"""

from __future__ import annotations

from peewee import (
    SQL,
    AutoField,
    BlobField,
    BooleanField,
    DatabaseProxy,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from poller.ates.outcomes import STATUS_COMPLETE, STATUS_NEW

database = DatabaseProxy()


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Organization(BaseModel):
    id = AutoField()
    name = TextField(index=True)
    is_local = BooleanField(default=False)
    created = TextField()

    class Meta:
        table_name = "organization"


class Contact(BaseModel):
    id = AutoField()
    organization = ForeignKeyField(Organization, backref="contacts", on_delete="CASCADE")
    first_name = TextField(default="")
    last_name = TextField(default="")
    email = TextField(null=True, index=True)
    email2 = TextField(null=True, index=True)
    email3 = TextField(null=True, index=True)
    created = TextField()

    class Meta:
        table_name = "contact"


class Device(BaseModel):
    id = AutoField()
    organization = ForeignKeyField(Organization, backref="devices", on_delete="CASCADE")
    name = TextField()
    created = TextField()

    class Meta:
        table_name = "device"
        indexes = ((("organization", "name"), True),)


class UdfDefinition(BaseModel):
    """A user-defined field, e.g. entity 'organization', label 'Kaseya Customer ID'."""

    id = AutoField()
    entity = TextField()  # organization | device | ticket
    label = TextField()
    source = TextField()
    kind = TextField()  # Customer ID | Device ID | Agent GUID | Alert ID | Ticket ID
    created = TextField()

    class Meta:
        table_name = "udf_definition"
        indexes = ((("entity", "label"), True),)


class UdfValue(BaseModel):
    id = AutoField()
    # no index of its own: both of the indexes below begin with it
    udf = ForeignKeyField(UdfDefinition, backref="values", on_delete="CASCADE", index=False)
    entity_id = IntegerField()  # organization.id, device.id or ticket.id, per udf.entity
    value = TextField()

    class Meta:
        table_name = "udf_value"
        indexes = (
            (("udf", "entity_id"), True),
            (("udf", "value"), False),
        )


class Ticket(BaseModel):
    id = AutoField()
    number = TextField(unique=True)
    title = TextField()
    description = TextField(default="")
    status = TextField(default=STATUS_NEW)
    organization = ForeignKeyField(Organization, backref="tickets")
    contact = ForeignKeyField(Contact, null=True, backref="tickets", on_delete="SET NULL")
    device = ForeignKeyField(Device, null=True, backref="tickets", on_delete="SET NULL")
    occurrences = IntegerField(default=1)
    created = TextField()
    updated = TextField()
    completed = TextField(null=True)
    # the [imap] name of the mailbox that created it, and what that mailbox gives its tickets
    mailbox = TextField(null=True)
    queue = TextField(null=True)
    priority = TextField(null=True)
    source = TextField(null=True)  # the ticket source (e.g. Monitoring Alert), not a UDF source
    issue_type = TextField(null=True)
    sub_issue = TextField(null=True)  # the token's SubIssue
    # Decision.open_key: unique among the organization's open tickets (database.py's
    # OPEN_KEY_INDEX), so two workers racing on one alert make one ticket
    open_key = TextField(null=True)

    class Meta:
        table_name = "ticket"
        indexes = ((("status", "id"), False), (("completed",), False))


# Open tickets, newest first, all of them or of one organization or device (the web view's
# list): partial indexes hold only the open ones, a few per cent of a store. A query uses them
# when it says `status != 'Complete'` itself.
for _name, _columns in (("ticket_open", (Ticket.id,)),
                        ("ticket_open_organization", (Ticket.organization, Ticket.id)),
                        ("ticket_open_device", (Ticket.device, Ticket.id))):
    Ticket.add_index(Ticket.index(*_columns, name=_name).where(Ticket.status != STATUS_COMPLETE))


class TicketSequence(BaseModel):
    """The last ticket number handed out per day: TYYYYMMDD.NNNN."""

    day = TextField(primary_key=True)
    last = IntegerField()

    class Meta:
        table_name = "ticket_sequence"


class TicketNote(BaseModel):
    id = AutoField()
    ticket = ForeignKeyField(Ticket, backref="notes", on_delete="CASCADE")
    kind = TextField()  # duplicate | resolution | system | technician | reply
    title = TextField()
    text = TextField(default="")
    created = TextField()

    class Meta:
        table_name = "ticket_note"


class Attachment(BaseModel):
    id = AutoField()
    ticket = ForeignKeyField(Ticket, backref="attachments", on_delete="CASCADE")
    note = ForeignKeyField(TicketNote, null=True, backref="attachments", on_delete="SET NULL")
    filename = TextField()
    content_type = TextField()
    size = IntegerField()
    sha256 = TextField()
    content = BlobField(null=True)  # NULL when kept on disk under [database] attachments_dir
    path = TextField(null=True)
    created = TextField()

    class Meta:
        table_name = "attachment"


class ProcessedMessage(BaseModel):
    """One row per mail the worker has decided on; the source of truth for exactly-once.

    mailbox is the [imap] name of the mailbox the mail was found in: several mailboxes may
    share a database, and their folders and UIDs overlap."""

    id = AutoField()
    folder = TextField()
    uidvalidity = IntegerField()
    uid = IntegerField()
    message_id = TextField(null=True, index=True)  # a reply's In-Reply-To finds its ticket
    # indexed in two halves, by whether the mail had an effect (database.py's SAME_MAIL_INDEX
    # and EFFECTLESS_INDEX)
    fingerprint = TextField()
    subject = TextField(default="")
    outcome = TextField()
    reason = TextField(default="")
    ticket = ForeignKeyField(Ticket, null=True, backref="messages", on_delete="SET NULL")
    action = TextField()  # flag | move:<folder> | none
    # what the step is for (poller.ates.decision.Purpose): a pending step is planned again from it
    purpose = TextField(default="done", constraints=[SQL("DEFAULT 'done'")])
    mailbox_done = BooleanField(default=False)
    # why the server refused the step when it was last tried; '' when it was not
    step_error = TextField(default="", constraints=[SQL("DEFAULT ''")])
    created = TextField()
    updated = TextField()
    mailbox = TextField(default="", constraints=[SQL("DEFAULT ''")])

    class Meta:
        table_name = "processed_message"
        indexes = (
            (("mailbox", "folder", "uidvalidity", "uid"), True),
            (("mailbox_done", "mailbox", "folder"), False),
            # alerts over time (the web view's charts): outcome IN (…) AND created >= ? is a
            # range per outcome
            (("outcome", "created"), False),
        )


class PassLog(BaseModel):
    """One row per pass of a mailbox: when, how long, and the counts by outcome."""

    id = AutoField()
    started = TextField()
    finished = TextField()
    seconds = TextField()
    ok = BooleanField()
    counts = TextField(default="")  # "created=3 appended=1 …"
    error = TextField(default="")
    mailbox = TextField(default="", constraints=[SQL("DEFAULT ''")])

    class Meta:
        table_name = "pass_log"


class Outbox(BaseModel):
    """The transactional outbox: one row per ticket event, written in the transaction of the
    change that caused it, delivered (POSTed) after the commit. body is the exact JSON sent on
    every attempt; delivery_id is its "id", the same on every retry."""

    id = AutoField()  # the order events happened in
    delivery_id = TextField(unique=True)
    event = TextField()  # created | appended | completed
    ticket = ForeignKeyField(Ticket, null=True, backref="events", on_delete="SET NULL")
    ticket_number = TextField()
    body = TextField()
    status = TextField(default="pending")  # pending | failed (retried) | delivered
    attempts = IntegerField(default=0)
    last_error = TextField(default="")
    next_attempt = TextField()
    created = TextField()
    delivered = TextField(null=True)

    class Meta:
        table_name = "outbox"
        indexes = ((("status", "id"), False),)


class Lease(BaseModel):
    """Who serves a mailbox (PostgreSQL, poller.store.lease): the instance holding its advisory
    lock. epoch grows with every take-over; a pass commits only while it is still its own."""

    mailbox = TextField(primary_key=True)
    epoch = IntegerField()
    host = TextField()
    pid = IntegerField()
    since = TextField()
    heartbeat = TextField()

    class Meta:
        table_name = "mailbox_lease"


class Standby(BaseModel):
    """An instance waiting to take a mailbox over, and when it last said so."""

    id = AutoField()
    mailbox = TextField()
    host = TextField()
    pid = IntegerField()
    since = TextField()
    seen = TextField()

    class Meta:
        table_name = "mailbox_standby"
        indexes = ((("mailbox", "host", "pid"), True),)


class ExpectedMail(BaseModel):
    """One row per [[expect]] entry (by name): the window for its next deadline opened at
    window_start; checked is the last deadline looked at (a deadline is looked at once, in the
    transaction that opens or repeats its ticket); ticket is the ticket its misses opened,
    until the expected mail completes it."""

    name = TextField(primary_key=True)
    window_start = TextField()
    checked = TextField()
    ticket = ForeignKeyField(Ticket, null=True, on_delete="SET NULL")
    misses = IntegerField(default=0)
    created = TextField()

    class Meta:
        table_name = "expected_mail"


class ExpectedArrival(BaseModel):
    """When the mail of an [[expect]] entry arrived (its Date, or when it was read)."""

    id = AutoField()
    name = TextField()
    arrived = TextField()
    message = ForeignKeyField(ProcessedMessage, null=True, on_delete="SET NULL")

    class Meta:
        table_name = "expected_arrival"
        indexes = ((("name", "arrived"), False),)


MODELS = (
    Organization,
    Contact,
    Device,
    UdfDefinition,
    UdfValue,
    Ticket,
    TicketSequence,
    TicketNote,
    Attachment,
    ProcessedMessage,
    PassLog,
    Outbox,
    Lease,
    Standby,
    ExpectedMail,
    ExpectedArrival,
)
