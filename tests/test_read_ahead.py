"""A chunk's look-ups are read ahead, one query per kind (poller.store.ahead): the answers must
be those the look-ups give one by one, also after what earlier mail of the same chunk wrote."""

from __future__ import annotations

from poller.ates.lookups import Lookups
from poller.service.passes import opened_store
from poller.store import engine, record
from poller.store.engine import postgres_engine
from poller.store.store import Store
from testkit.harness import Harness
from testkit.support import alert_mail, token


def test_what_earlier_mail_of_a_chunk_wrote_is_seen_by_later_mail_of_it(box):
    tok = token(CustomerID="Kaseya:100", AlertID="Kaseya:77")
    first = alert_mail(subject="CPU high on SRV1", tok=tok, message_id="<a1@x>")
    box.mailbox.add(first,
                    alert_mail(subject="CPU high on SRV1", body="still high", tok=tok,
                               message_id="<a2@x>"),
                    alert_mail(subject="RESOLVED: CPU high on SRV1", tok=tok,
                               message_id="<a3@x>"),
                    alert_mail(subject="CPU high on SRV1", body="again", tok=tok,
                               message_id="<a4@x>"),
                    b"Received: from relay2 by mx; Sun, 29 Nov 2026 09:00:05 +0000\r\n" + first)
    result = box.run()
    assert box.outcomes() == ["created", "appended", "completed", "created", "duplicate"]
    assert result.decided() == 5
    first_ticket, second_ticket = box.tickets()
    assert (first_ticket["status"], first_ticket["occurrences"]) == ("Complete", 2)
    assert (second_ticket["status"], second_ticket["occurrences"]) == ("New", 1)


def test_ticket_numbers_of_a_chunk_follow_on_and_the_next_pass_goes_on_from_them(box):
    box.mailbox.add(*(alert_mail(tok=token(AlertID=f"Kaseya:{n}")) for n in range(3)))
    box.run()
    box.mailbox.add(alert_mail(tok=token(AlertID="Kaseya:9")))
    box.run()
    numbers = [t["number"] for t in box.tickets()]
    assert numbers == [f"T20261129.{n:04d}" for n in (1, 2, 3, 4)]


def test_a_chunk_asks_for_organizations_devices_and_open_tickets_once(box, monkeypatch):
    box.mailbox.add(*(alert_mail(tok=token(CustomerID="Kaseya:100", DeviceID="Kaseya:123",
                                           AlertID=f"Kaseya:{n % 7}")) for n in range(20)))
    asked: list[str] = []
    for engine_class in (engine.SqliteEngine, engine.PostgresEngine):
        original = engine_class.sql

        def counting(self, text, params=(), original=original):
            if "FROM udf_value" in text:
                asked.append(text)
            return original(self, text, params)

        monkeypatch.setattr(engine_class, "sql", counting)
    assert box.run().counts == {"created": 7, "appended": 13}
    assert len(asked) == 3  # one chunk: one query per kind, not three per mail


def test_the_answers_read_ahead_are_those_of_the_lookups_one_by_one(box):
    shared = token(CustomerID="Kaseya:100", DeviceID="Kaseya:123", AlertID="Kaseya:1")
    first = alert_mail(tok=shared, message_id="<m1@x>")
    box.mailbox.add(first, alert_mail(tok=shared, message_id="<m2@x>"),
                    alert_mail(tok=token(CustomerID="Kaseya:200", AlertID="Kaseya:1")),
                    alert_mail(subject="RESOLVED: x", tok=token(CustomerID="Kaseya:200",
                                                                AlertID="Kaseya:1")),
                    alert_mail(tok=token(CustomerID="Kaseya:200", AlertID="Kaseya:2")),
                    alert_mail(tok=token(pw="wrong", AlertID="Kaseya:3"), message_id="<q@x>"),
                    b"Received: from relay2 by mx; Sun, 29 Nov 2026 09:00:05 +0000\r\n" + first)
    box.run()
    with opened_store(box.settings) as store:
        rows = store.db.sql("SELECT fingerprint FROM processed_message").fetchall()
        fingerprints = {row[0] for row in rows} | {"never-seen"}
        customers = {("Kaseya Customer ID", value) for value in ("100", "200", "300")}
        devices = {("Kaseya Device ID", value) for value in ("123", "999")}
        alerts = {("Kaseya Alert ID", value) for value in ("1", "2", "3", "4")}
        emails = {"Jane@Two.example ", "fred@one.example", "nobody@x.example"}
        names = {"Client One", "Client Two", "Nobody Ltd"}
        keys = (fingerprints, customers, devices, alerts, emails, names)
        one_by_one = _answers(store, *keys)
        assert store.ahead is None
        with store.db.atomic():
            store.read_ahead(Lookups(*keys))
            ahead = _answers(store, *keys)
            store.forget_ahead()
    assert ahead == one_by_one
    # what the pass left to be told apart: an earlier delivery, a missing one; both
    # organizations with alert 1 (one open, one completed), alert 2 open
    assert one_by_one[0]["never-seen"] is None and any(one_by_one[0].values())
    assert one_by_one[3][(1, "Kaseya Alert ID", "1")] != []
    assert one_by_one[3][(2, "Kaseya Alert ID", "1")] == []
    assert one_by_one[3][(2, "Kaseya Alert ID", "2")] != []
    assert one_by_one[4]["Jane@Two.example "] != [] and one_by_one[4]["nobody@x.example"] == []
    assert one_by_one[5]["Client One"] != [] and one_by_one[5]["Nobody Ltd"] == []


def _answers(store, fingerprints, customers, devices, alerts, emails, names):
    organizations = (1, 2, 3)
    return (
        {fingerprint: store.delivered_before(fingerprint) for fingerprint in fingerprints},
        {key: sorted(store.organizations_by_udf(*key)) for key in customers},
        {key: sorted(store.devices_by_udf(*key), key=repr) for key in devices},
        {(organization, *key): store.open_tickets_by_udf(organization, *key)
         for organization in organizations for key in alerts},
        {email: sorted(store.contacts_by_email(email), key=repr) for email in emails},
        {name: sorted(store.organizations_by_name(name)) for name in names},
    )


def test_a_long_chunk_searches_the_log_by_fingerprint_instead_of_walking_it(
        tmp_path, reader, monkeypatch):
    box = Harness(tmp_path, reader)  # SQLite's query plan (PostgreSQL's comes from statistics)
    box.mailbox.add(*(alert_mail(tok=token(AlertID=f"Kaseya:{n}")) for n in range(30)))
    box.run()
    statements: list[tuple[str, tuple]] = []
    original = engine.SqliteEngine.sql

    def recording(self, text, params=()):
        statements.append((text, tuple(params)))
        return original(self, text, params)

    with opened_store(box.settings) as store:
        monkeypatch.setattr(engine.SqliteEngine, "sql", recording)
        store.read_ahead(Lookups({f"fingerprint {n}" for n in range(400)}))
        monkeypatch.undo()
        ((text, params),) = [s for s in statements if "processed_message" in s[0]]
        plan = [row[3] for row in store.db.sql(f"EXPLAIN QUERY PLAN {text}", params)]
    assert not [step for step in plan if step.startswith("SCAN p")], plan
    assert any("processed_message_same_mail" in step for step in plan), plan
    assert any("processed_message_fingerprint_effectless" in step for step in plan), plan


def test_a_mail_whose_writes_are_rolled_back_leaves_no_answer_read_ahead_behind(
        box, monkeypatch):
    """The first alert's ticket is made, then its log row fails: the mail is quarantined and
    its ticket rolled back, and neither the next alert (which may get the same ticket id) nor
    the first alert's clear may take the rolled-back ticket for an open one."""
    for engine_class in (engine.SqliteEngine, engine.PostgresEngine):
        for method in ("sql", "insert"):
            original = getattr(engine_class, method)

            def failing(self, text, params=(), original=original):
                if text.startswith("INSERT INTO processed_message") and \
                        "<boom@x>" in params and "created" in params:
                    raise engine.DatabaseFailed("the log row cannot be written")
                return original(self, text, params)

            monkeypatch.setattr(engine_class, method, failing)
    box.mailbox.add(
        alert_mail(subject="Disk full on SRV1", message_id="<boom@x>",
                   tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:1")),
        alert_mail(subject="CPU high on SRV2", message_id="<b@x>",
                   tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:2")),
        alert_mail(subject="RESOLVED: Disk full on SRV1", message_id="<c@x>",
                   tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:1")))
    box.run()
    assert box.outcomes() == ["quarantined", "created", "skipped"]
    (ticket,) = box.tickets()
    assert (ticket["title"], ticket["status"]) == ("CPU high on SRV2", "New")


def test_a_ticket_completed_elsewhere_while_a_chunk_is_decided_gets_no_occurrence(
        tmp_path, reader, pg_url, monkeypatch):
    """On PostgreSQL nothing stops a technician (or another worker) from completing a ticket
    while a chunk that read it as open is decided: the repeat of its alert is decided again
    and opens a ticket of its own."""
    url = pg_url
    box = Harness(tmp_path, reader, url)
    tok = token(CustomerID="Kaseya:100", AlertID="Kaseya:5")
    box.mailbox.add(alert_mail(subject="Disk full", tok=tok))
    box.run()
    (first,) = box.tickets()
    box.mailbox.add(alert_mail(subject="Other", tok=token(CustomerID="Kaseya:100",
                                                          AlertID="Kaseya:6")),
                    alert_mail(subject="Disk full", body="again", tok=tok))
    original = record.Recorder.record
    done: list[bool] = []

    def record_then_complete(self, *args, **kwargs):
        made = original(self, *args, **kwargs)
        if not done:  # after the chunk's first mail, the technician completes the ticket
            done.append(True)
            other = postgres_engine(url)
            try:
                other.sql("UPDATE ticket SET status = 'Complete' WHERE number = ?",
                          (first["number"],))
            finally:
                other.close()
        return made

    monkeypatch.setattr(record.Recorder, "record", record_then_complete)
    box.run()
    tickets = {t["number"]: t for t in box.tickets()}
    assert tickets[first["number"]]["occurrences"] == 1
    assert sorted((t["title"], t["status"]) for t in tickets.values()) == [
        ("Disk full", "Complete"), ("Disk full", "New"), ("Other", "New")]


def test_a_create_race_lost_while_the_ticket_id_is_not_yet_read_appends_to_the_winner(
        tmp_path, reader, pg_url, monkeypatch):
    """On PostgreSQL a new ticket's id is read at the end of the chunk: when another worker
    opened the same alert's ticket meanwhile, the chunk is decided again and the mail appends
    to the winner's ticket."""
    url = pg_url
    box = Harness(tmp_path, reader, url)
    box.mailbox.add(alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:1")))
    box.run()  # the store knows Kaseya's UDFs
    box.mailbox.add(alert_mail(subject="Disk full", body="ours",
                               tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:7")))
    original = Store.read_ahead
    raced: list[bool] = []

    def read_ahead_then_lose_the_race(self, wanted):
        original(self, wanted)
        if not raced:  # another worker commits the same alert's ticket after the look-ups
            raced.append(True)
            other = postgres_engine(url)
            try:
                with other.atomic():
                    (org,) = other.sql("SELECT id FROM organization WHERE name = 'Client One'"
                                       ).fetchone()
                    (udf_id,) = other.sql("SELECT id FROM udf_definition WHERE label = "
                                          "'Kaseya Alert ID'").fetchone()
                    (ticket_id,) = other.sql(
                        "INSERT INTO ticket (number, title, description, status, "
                        "organization_id, occurrences, created, updated, open_key) VALUES "
                        "('T20261129.0900', 'Disk full', 'theirs', 'New', ?, 1, ?, ?, "
                        "'Kaseya Alert ID=7') RETURNING id",
                        (org, "2026-11-29T10:00:00+00:00", "2026-11-29T10:00:00+00:00")
                    ).fetchone()
                    other.sql("INSERT INTO udf_value (udf_id, entity_id, value) "
                              "VALUES (?, ?, '7')", (udf_id, ticket_id))
            finally:
                other.close()

    monkeypatch.setattr(Store, "read_ahead", read_ahead_then_lose_the_race)
    box.run()
    outcomes = box.outcomes()
    tickets = {t["number"]: t for t in box.tickets()}
    assert outcomes == ["created", "appended"]
    assert tickets["T20261129.0900"]["occurrences"] == 2
    assert sorted(tickets) == ["T20261129.0001", "T20261129.0900"]
