"""A pass over an in-memory mailbox: every decision path of the worker, in milliseconds.

The mailbox is testkit.fake_mailbox.FakeMailbox; the store is a real SQLite file. What the
IMAP side does with the steps (PEEK, MOVE, folders, TLS, crashes) is tested against the real
Dovecot in test_worker_imap.py.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from poller.service.passes import opened_store
from poller.service.reader import Reader
from poller.store import record
from testkit import misreading
from testkit.harness import Harness
from testkit.support import alert_mail, token


def test_new_alert_maps_organization_device_and_alert_id(box):
    (uid,) = box.mailbox.add(alert_mail(tok=token(CustomerID="Kaseya:100", DeviceID="Kaseya:123",
                                                  AlertID="Kaseya:8932")))
    result = box.run()
    assert result.counts == {"created": 1}
    (ticket,) = box.tickets()
    assert (ticket["title"], ticket["description"]) == ("Disk full on SRV1", "Disk C: is 99% full.")
    assert (ticket["organization"], ticket["device"], ticket["status"]) == ("Client One", "SRV1",
                                                                            "New")
    assert ticket["udfs"] == {"Kaseya Alert ID": "8932"}
    assert box.mailbox.where(uid) == "flagged"
    assert box.mailbox.flags[uid] == {"\\Seen", "$AtesProcessed"}


def test_unknown_customer_goes_to_local_organization_with_a_note(box):
    box.mailbox.add(alert_mail(tok=token(CustomerID="Kaseya:999", DeviceID="Kaseya:777")))
    box.run()
    (ticket,) = box.tickets()
    assert ticket["organization"] == "Acme MSP" and ticket["device"] is None
    texts = " ".join(n["text"] for n in ticket["notes"])
    assert "Kaseya Customer ID '999'" in texts and "777" in texts


def test_email_maps_organization_and_contact_and_contact_element_creates_one(box):
    box.mailbox.add(alert_mail(tok=token(Email="Jane@Two.example")),
                    alert_mail(tok=token(Customer="Client One", Email="fred@one.example",
                                         Contact="Fred Jones", AlertID="Kaseya:2")))
    box.run()
    first, second = box.tickets()
    assert (first["organization"], first["contact"]) == ("Client Two", "jane@two.example")
    assert (second["organization"], second["contact"]) == ("Client One", "fred@one.example")


def test_repeated_alert_is_appended_as_a_note(box):
    for n in range(3):
        box.mailbox.add(alert_mail(body=f"occurrence {n}",
                                   tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:5")))
    box.run()
    (ticket,) = box.tickets()
    assert ticket["occurrences"] == 3
    assert [n["text"] for n in ticket["notes"] if n["kind"] == "duplicate"] == [
        "occurrence 1", "occurrence 2"]
    assert box.outcomes() == ["created", "appended", "appended"]


def test_same_alert_id_in_other_organization_or_source_is_a_new_ticket(box):
    box.mailbox.add(alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:5")),
                    alert_mail(tok=token(CustomerID="Kaseya:200", AlertID="Kaseya:5")),
                    alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Nagios:5")))
    box.run()
    assert len(box.tickets()) == 3


def test_action_new_creates_a_ticket_per_alert(box):
    box.configure(duplicates={"action": "new"})
    box.mailbox.add(*(alert_mail(tok=token(AlertID="Kaseya:5")) for _ in range(2)))
    box.run()
    assert len(box.tickets()) == 2


def test_same_external_ticket_id_and_the_ticket_number_append_to_that_ticket(box):
    box.mailbox.add(alert_mail(tok=token(CustomerID="Kaseya:100", TicketID="Kaseya:K-1")))
    box.run()
    (first,) = box.tickets()
    box.mailbox.add(alert_mail(tok=token(CustomerID="Kaseya:100", TicketID="Kaseya:K-1")),
                    alert_mail(tok=token(TicketNumber=first["number"])))
    box.run()
    (ticket,) = box.tickets()
    assert ticket["occurrences"] == 3
    assert ticket["udfs"] == {"Kaseya Ticket ID": "K-1"}


def test_clear_completes_then_the_same_alert_opens_a_new_ticket(box):
    tok = token(CustomerID="Kaseya:100", AlertID="Kaseya:77")
    box.mailbox.add(alert_mail(subject="CPU high on SRV1", tok=tok),
                    alert_mail(subject="RESOLVED: CPU high on SRV1", body="back to 10%", tok=tok))
    box.run()
    (ticket,) = box.tickets()
    assert ticket["status"] == "Complete" and ticket["completed"]
    assert (ticket["notes"][-1]["kind"], ticket["notes"][-1]["text"]) == ("resolution",
                                                                          "back to 10%")
    box.mailbox.add(alert_mail(subject="CPU high on SRV1", tok=tok))
    box.run()
    assert [t["status"] for t in box.tickets()] == ["Complete", "New"]


def test_clear_with_nothing_open_is_recorded_flagged_and_creates_nothing(box):
    (uid,) = box.mailbox.add(alert_mail(subject="Cleared: disk", tok=token(AlertID="Kaseya:404")))
    box.run()
    assert box.tickets() == []
    (row,) = box.messages()
    assert row["outcome"] == "skipped" and "no open ticket" in row["reason"]
    assert box.mailbox.where(uid) == "flagged"


def test_mail_without_token_is_left_untouched_and_not_read_again(box):
    (uid,) = box.mailbox.add(b"Subject: lunch?\r\nMessage-ID: <l@x>\r\n\r\nPizza at noon.\r\n")
    box.run()
    box.run()
    assert box.mailbox.where(uid) == "untouched"
    assert box.mailbox.fetched == [[uid]]  # the second pass did not fetch it again
    assert box.outcomes() == ["skipped"]


def test_mail_without_token_is_moved_when_configured(box):
    box.configure(mailbox={"on_no_token": "move", "no_token_folder": "Other"})
    (uid,) = box.mailbox.add(b"Subject: lunch?\r\n\r\nPizza at noon.\r\n")
    box.run()
    assert box.mailbox.where(uid) == "Other"


def test_move_mode_moves_processed_and_quarantined_mail(box):
    box.configure(mailbox={"on_success": "move", "processed_folder": "Done/Alerts"})
    good, bad = box.mailbox.add(alert_mail(), alert_mail(tok=token(pw="wrong")))
    box.run()
    assert (box.mailbox.where(good), box.mailbox.where(bad)) == ("Done/Alerts", "Quarantine")


def test_wrong_pw_is_quarantined_with_a_reason_that_does_not_echo_it(box):
    (uid,) = box.mailbox.add(alert_mail(tok=token(pw="not-the-key", AlertID="Kaseya:1")))
    box.run()
    assert box.tickets() == []
    assert box.mailbox.where(uid) == "Quarantine"
    (row,) = box.messages()
    assert row["outcome"] == "quarantined" and "PW" in row["reason"]
    assert "not-the-key" not in repr(row)


def test_same_mail_delivered_twice_has_one_effect(box):
    raw = alert_mail(message_id="<once@client.example>", tok=token(AlertID="Kaseya:3"))
    box.mailbox.add(raw, b"Received: from relay2 by mx; Thu, 26 Nov 2026 10:00:05 +0000\r\n"
                    + raw)
    box.run()
    (ticket,) = box.tickets()
    assert ticket["occurrences"] == 1
    assert box.outcomes() == ["created", "duplicate"]


def test_without_message_id_a_new_occurrence_after_a_clear_opens_a_ticket(box):
    """Postfix adds no Message-ID to remote mail: the occurrences of a recurring alert then
    differ only in their Date, which tells them apart; a re-delivered copy is still one."""
    tok = token(CustomerID="Kaseya:100", AlertID="Kaseya:77")
    first = alert_mail(subject="CPU high on SRV1", tok=tok, message_id="",
                       date=datetime(2026, 11, 29, 9, 0))
    box.mailbox.add(first, b"Received: from relay2 by mx; Sun, 29 Nov 2026 09:00:05 +0000\r\n"
                    + first)
    box.mailbox.add(alert_mail(subject="RESOLVED: CPU high on SRV1", tok=tok, message_id="",
                               date=datetime(2026, 11, 29, 9, 10)))
    box.run()
    assert box.outcomes() == ["created", "duplicate", "completed"]
    box.mailbox.add(alert_mail(subject="CPU high on SRV1", tok=tok, message_id="",
                               date=datetime(2026, 11, 29, 9, 20)))
    box.run()
    assert box.outcomes()[-1] == "created"
    assert [t["status"] for t in box.tickets()] == ["Complete", "New"]


def test_mail_with_neither_message_id_nor_date_is_decided_each_time_it_comes(box):
    raw = alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:9"), message_id="",
                     date=None)
    box.mailbox.add(raw, raw)
    box.run()
    assert box.outcomes() == ["created", "appended"]  # never an alert swallowed as a copy


def test_a_copy_of_mail_decided_by_the_earlier_release_is_still_recognised(box):
    raw = alert_mail(message_id="<before@client.example>", tok=token(AlertID="Kaseya:3"))
    body = raw[raw.index(b"\n\n"):]
    # what the earlier release wrote: Message-ID, subject and body
    earlier = hashlib.sha256(b"<before@client.example>\0Disk full on SRV1\0" + body).hexdigest()
    box.mailbox.add(raw)
    box.run()
    with opened_store(box.settings) as store:
        (fingerprint,) = store.db.execute_sql("SELECT fingerprint FROM processed_message")
    assert fingerprint == (earlier,)


def test_attachments_are_stored_with_the_ticket_within_the_budget(box):
    box.configure(limits={"max_attachment_bytes": "20000"})
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    big = b"\0" * 30000
    box.mailbox.add(alert_mail(attachments=(("report.pdf", pdf, "application/pdf"),
                                            ("dump.bin", big, "application/octet-stream"))))
    box.run()
    (ticket,) = box.tickets()
    assert ticket["attachments"] == [
        {"filename": "report.pdf", "size": len(pdf), "content_type": "application/pdf",
         "sha256": hashlib.sha256(pdf).hexdigest()}]
    (note,) = [n for n in ticket["notes"] if n["title"] == "Attachment not stored"]
    assert "dump.bin (30000 bytes)" in note["text"]


def test_oversized_mail_is_quarantined_without_being_fetched(box):
    box.configure(limits={"max_message_bytes": "4096"})
    big, small = box.mailbox.add(alert_mail(body="x" * 10_000),
                                 alert_mail(tok=token(AlertID="Kaseya:2")))
    box.run()
    assert len(box.tickets()) == 1
    assert box.mailbox.where(big) == "Quarantine"
    assert all(big not in uids for uids in box.mailbox.fetched)
    (reason,) = [m["reason"] for m in box.messages() if m["outcome"] == "quarantined"]
    assert "over the limit of 4096 bytes" in reason


def test_broken_mail_is_quarantined_and_the_pass_goes_on(box):
    box.mailbox.add(alert_mail(tok='<Autotask><PW name="x"/><!DOCTYPE a></Autotask>'),
                    b"\x00\xff garbage that is no mail at all",
                    alert_mail(tok=token(AlertID="Kaseya:9")))
    box.run()
    assert len(box.tickets()) == 1
    assert box.outcomes() == ["quarantined", "quarantined", "created"]
    assert any("DTD" in m["reason"] for m in box.messages())


def test_a_refused_mailbox_step_is_repeated_by_the_next_pass(box):
    (uid,) = box.mailbox.add(alert_mail())
    box.mailbox.refuse_steps = True
    assert box.run().pending == 1
    assert box.mailbox.where(uid) == "untouched" and len(box.tickets()) == 1
    box.mailbox.refuse_steps = False
    assert box.run().pending == 0
    assert box.mailbox.where(uid) == "flagged"
    assert len(box.tickets()) == 1 and box.outcomes() == ["created"]


def test_chunks_of_a_backlog_are_decided_in_order(box):
    box.configure(imap={"fetch_chunk": "3"})
    uids = box.mailbox.add(*(alert_mail(body=f"n{n}", tok=token(AlertID=f"Kaseya:{n % 2}"))
                             for n in range(8)))
    result = box.run()
    assert result.counts == {"created": 2, "appended": 6}
    assert [len(chunk) for chunk in box.mailbox.fetched] == [3, 3, 2]
    assert [m["uid"] for m in box.messages()] == uids
    assert all(box.mailbox.where(uid) == "flagged" for uid in uids)


def test_a_mail_whose_recording_fails_is_quarantined_alone(box, monkeypatch):
    box.configure(imap={"fetch_chunk": "10"})
    uids = box.mailbox.add(*(alert_mail(subject=subject, tok=token(AlertID=f"Kaseya:{n}"))
                             for n, subject in enumerate(("Disk full", "BOOM on SRV2", "CPU high"))))
    create = record._create

    def failing_create(store, number, mailbox, decision, alert, now, attachments_dir, wait):
        made = create(store, number, mailbox, decision, alert, now, attachments_dir,
                      wait)  # written, then undone
        if alert.title.startswith("BOOM"):
            raise RuntimeError("boom")
        return made

    monkeypatch.setattr(record, "_create", failing_create)
    box.run()
    rows = box.messages()
    assert [(m["subject"], m["outcome"]) for m in rows] == [
        ("Disk full", "created"), ("BOOM on SRV2", "quarantined"), ("CPU high", "created")]
    assert rows[1]["reason"] == "internal error: RuntimeError: boom" and rows[1]["ticket"] is None
    tickets = box.tickets()
    assert [t["title"] for t in tickets] == ["Disk full", "CPU high"]
    assert [t["udfs"] for t in tickets] == [{"Kaseya Alert ID": "0"}, {"Kaseya Alert ID": "2"}]
    # the number the undone ticket had is handed out again
    assert [t["number"][-5:] for t in tickets] == [".0001", ".0002"]
    assert [box.mailbox.where(uid) for uid in uids] == ["flagged", "Quarantine", "flagged"]


def test_sizes_come_first_in_one_fetch_and_chunks_are_cut_by_bytes(box):
    box.configure(limits={"max_fetch_bytes": str(1024 * 1024)})  # chunks of at most 512 KiB

    def mail(n: int, kib: int) -> bytes:
        return alert_mail(body=("x" * 70 + "\n") * (kib * 1024 // 71),
                          tok=token(AlertID=f"Kaseya:{n}"))

    uids = box.mailbox.add(mail(1, 200), mail(2, 200), mail(3, 200), mail(4, 700), mail(5, 200))
    assert box.run().counts == {"created": 5}
    assert box.mailbox.sized == [uids]
    assert box.mailbox.fetched == [uids[:2], [uids[2]], [uids[3]], [uids[4]]]


def test_only_mail_larger_than_its_share_of_a_chunk_has_its_size_fetched(box):
    # halves of 512 KiB in chunks of 4: a mail's share is 128 KiB
    box.configure(imap={"fetch_chunk": "4"}, limits={"max_fetch_bytes": str(1024 * 1024)})

    def mail(n: int, kib: int) -> bytes:
        return alert_mail(body=("x" * 70 + "\n") * (kib * 1024 // 71),
                          tok=token(AlertID=f"Kaseya:{n}"))

    uids = box.mailbox.add(mail(1, 1), mail(2, 200), mail(3, 1), mail(4, 1), mail(5, 1))
    assert box.run().counts == {"created": 5}
    assert box.mailbox.sized == [[uids[1]]]
    # the small ones count as 128 KiB each: 128 + 200 + 128, then 128 more would be over 512
    assert box.mailbox.fetched == [uids[:3], uids[3:]]


def test_a_mail_over_the_time_budget_is_quarantined_and_the_pass_goes_on(tmp_path):
    with Reader(misreading.read) as reader:
        box = Harness(tmp_path, reader, limits={"max_read_seconds": "1"})
        uids = box.mailbox.add(alert_mail(subject="Disk full", tok=token(AlertID="Kaseya:1")),
                               misreading.misread(alert_mail(subject="Spins",
                                                             tok=token(AlertID="Kaseya:2")),
                                                  "spin"),
                               alert_mail(subject="CPU high", tok=token(AlertID="Kaseya:3")))
        assert box.run().counts == {"created": 2, "quarantined": 1}
    (row,) = [m for m in box.messages() if m["outcome"] == "quarantined"]
    assert row["uid"] == uids[1]
    assert row["reason"] == ("reading it took more than 1 s of CPU ([limits] max_read_seconds)")
    assert [box.mailbox.where(uid) for uid in uids] == ["flagged", "Quarantine", "flagged"]


def test_nul_bytes_in_a_mail_do_not_stop_the_pass_on_either_engine(box):
    """PostgreSQL's text cannot hold NUL, and anyone can send one: there it is stored as
    U+FFFD (SQLite keeps it)."""
    raw = alert_mail(subject="Disk\x00full", body="C: is\x00 full",
                     message_id="<nul\x00@x>", tok=token(AlertID="Kaseya:0"))
    box.mailbox.add(raw, b"Subject: hi\x00there\r\nMessage-ID: <n2\x00@x>\r\n\r\nno token\x00\r\n")
    result = box.run()
    assert result.counts == {"created": 1, "skipped": 1}
    (ticket,) = box.tickets()
    nul = "\x00" if box.database_url.startswith("sqlite") else "\ufffd"
    assert (ticket["title"], ticket["description"]) == (f"Disk{nul}full", f"C: is{nul} full")
