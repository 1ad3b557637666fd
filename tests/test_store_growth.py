"""The cost per mail does not grow with the store: every per-mail statement is an index look-up.

A pass runs over mails that exercise every look-up and write, against a store that already
holds 20,000 tickets (30 % of them on the local organization, where unmatched alerts land).
SQLite's progress handler counts the virtual-machine instructions of each statement: a
statement that walks tickets, notes or the log instead of searching an index needs tens of
thousands of them here, an index search a few hundred at most.
"""

from __future__ import annotations

from collections import Counter

from poller.config import load_settings
from poller.imap.mailbox import Mailbox
from poller.service.pass_config import PassConfig
from poller.service.worker import Worker
from poller.store.database import open_database
from poller.store.store import Store
from testkit.prefill import add_history, build_directory
from testkit.support import alert_mail, token, write_settings

HISTORY = 20_000
STEP = 100  # instructions per progress-handler call
LIMIT = 50  # calls, i.e. 5,000 instructions; walking the local organization's tickets needs ~100,000


def mails(open_number: str) -> list[bytes]:
    again = alert_mail(message_id="<twice@client.example>", tok=token(AlertID="Kaseya:D-1"))
    return [
        alert_mail(tok=token(CustomerID="Kaseya:100", DeviceID="Kaseya:10000", AlertID="Kaseya:A-1")),
        alert_mail(body="again", tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:A-1")),
        alert_mail(subject="RESOLVED: disk", tok=token(CustomerID="Kaseya:100",
                                                       AlertID="Kaseya:A-1")),
        alert_mail(tok=token(CustomerID="Kaseya:999", AlertID="Kaseya:U-1")),
        alert_mail(body="again", tok=token(CustomerID="Kaseya:999", AlertID="Kaseya:U-1")),
        alert_mail(tok=token(Email="ops@client101.example", TicketID="Kaseya:K-1")),
        alert_mail(tok=token(Customer="Client 102", Email="new@client102.example",
                             Contact="New Person", DeviceID="Kaseya:10020")),
        alert_mail(tok=token(TicketNumber=open_number)),
        again,
        b"Received: from relay2 by mx; Thu, 26 Nov 2026 10:00:05 +0000\r\n" + again,
        alert_mail(tok=token(pw="wrong", AlertID="Kaseya:Q-1")),
        b"Subject: lunch?\r\nMessage-ID: <l@x>\r\n\r\nPizza at noon.\r\n",
    ]


def test_no_per_mail_statement_walks_the_store(tmp_path, imap_account):
    config = write_settings(tmp_path, imap_account)
    settings = load_settings(config)
    db_path = tmp_path / "tickets.db"
    build_directory(db_path, tmp_path)
    add_history(db_path, HISTORY)

    db = open_database(settings.database.url)
    store = Store(db, settings.ates.local_organization)
    (open_number,) = db.execute_sql(
        "SELECT number FROM ticket WHERE status = 'New' AND organization_id != 0 LIMIT 1"
    ).fetchone()
    for raw in mails(open_number):
        imap_account.append("INBOX", raw)

    worst: Counter[str] = Counter()
    current: list = [None, 0]

    def finish() -> None:
        if current[0] is not None:
            template = current[0].split(" VALUES ")[0][:120]
            worst[template] = max(worst[template], current[1])

    def statement(sql: str) -> None:
        finish()
        current[:] = [sql, 0]

    def progress() -> int:
        current[1] += 1
        return 0

    connection = db.connection()
    connection.set_trace_callback(statement)
    connection.set_progress_handler(progress, STEP)
    try:
        with Mailbox(settings.imap) as mailbox:
            result = Worker(PassConfig.of(settings), mailbox, store).run_pass()
        finish()
    finally:
        connection.set_trace_callback(None)
        connection.set_progress_handler(None, STEP)
        store.close()

    assert dict(result.counts) == {"created": 5, "appended": 3, "completed": 1, "duplicate": 1,
                                   "quarantined": 1, "skipped": 1}
    assert len(worst) > 10  # the handler did see the per-mail statements
    walkers = {sql: calls * STEP for sql, calls in worst.items() if calls > LIMIT}
    assert walkers == {}, f"statements whose cost grows with the store: {walkers}"
