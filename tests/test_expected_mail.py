"""Expected mail ([[expect]] in the rules file): a deadline by which no matching mail came
opens a ticket for the organization, a later one adds an occurrence while it is open, and the
mail completes it; a deadline is looked at once, whatever restarts; the mail is recorded as
`expected`; a reply is not the mail. Passes over the in-memory mailbox with a real store, at
chosen times."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from poller.config import load_settings
from poller.errors import ConfigError
from poller.service.deadlines import check_deadlines
from poller.service.pass_config import PassConfig
from poller.service.passes import opened_store
from poller.service.worker import Worker
from testkit.harness import Harness
from testkit.support import poller, write_settings

EXPECT = """[[expect]]
name = "nightly backup DC01"
from = '@backup\\.client-one\\.example$'
subject = '^\\[(Success|Warning|Failed)\\] Backup Job DC01'
deadline = "0 6 * * *"
organization = "Client One"
device = "SRV1"
priority = "High"
"""


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def report(day: int, hour: int, minute: int = 0, subject: str = "[Success] Backup Job DC01 "
           "(2 VMs)", n: int = 0) -> bytes:
    return (f"From: Veeam <reports@backup.client-one.example>\nSubject: {subject}\n"
            f"Message-ID: <r{day}-{hour}-{n}@backup.client-one.example>\n"
            f"Date: {at(day, hour, minute):%a, %d %b %Y %H:%M:%S} +0000\n\nSuccess: 2\n").encode()


@pytest.fixture
def box(tmp_path, reader) -> Harness:
    (tmp_path / "rules.toml").write_text(EXPECT)
    harness = Harness(tmp_path, reader, rules={"file": "rules.toml", "timezone": "UTC"})
    check(harness, at(1, 0))  # the first window opens when the entry is first loaded
    return harness


def check(box: Harness, when: datetime) -> list[tuple[str, str]]:
    with opened_store(box.settings) as store:
        return check_deadlines(box.settings, store, when)


def run(box: Harness, when: datetime):
    with opened_store(box.settings) as store:
        return Worker(PassConfig.of(box.settings), box.mailbox, store, clock=lambda: when,
                      reader=box.reader).run_pass()


def test_a_missed_deadline_opens_a_ticket_a_second_adds_an_occurrence_the_mail_completes(box):
    assert check(box, at(1, 5, 59)) == []
    ((name, number),) = check(box, at(1, 6, 1))
    assert name == "nightly backup DC01"
    (ticket,) = box.tickets()
    assert ticket["number"] == number and ticket["title"] == ("Expected mail did not arrive: "
                                                              "nightly backup DC01")
    assert (ticket["organization"], ticket["device"], ticket["priority"]) == ("Client One",
                                                                              "SRV1", "High")
    assert check(box, at(1, 6, 2)) == []  # a deadline is looked at once
    assert check(box, at(2, 6, 0)) == [(name, number)]
    assert box.tickets()[0]["occurrences"] == 2

    (uid,) = box.mailbox.add(report(2, 7))
    assert run(box, at(2, 7, 5)).counts == {"expected": 1}
    (ticket,) = box.tickets()
    assert ticket["status"] == "Complete"
    assert ticket["notes"][-1]["kind"] == "resolution"
    assert "[Success] Backup Job DC01" in ticket["notes"][-1]["text"]
    assert box.messages()[-1]["outcome"] == "expected"
    assert box.mailbox.where(uid) == "flagged"  # moved or flagged like processed mail
    assert check(box, at(3, 6, 30)) == []  # it came in the window before that deadline


def test_mail_written_before_the_deadline_and_read_after_it_counts_for_it(box):
    box.mailbox.add(report(1, 5, 55))
    run(box, at(1, 6, 4))  # cron every few minutes: the pass after the deadline reads it
    assert check(box, at(1, 6, 5)) == []
    assert box.tickets() == []


def test_a_pass_that_did_not_run_for_days_looks_at_each_deadline_once(box):
    assert [n for n, _ in check(box, at(4, 12))] == ["nightly backup DC01"] * 4  # 1st to 4th
    (ticket,) = box.tickets()
    assert ticket["occurrences"] == 4


def test_a_reply_or_a_duplicate_is_not_the_expected_mail(box):
    box.mailbox.add(report(1, 2, subject="RE: [Failed] Backup Job DC01 (2 VMs) 1 failed"),
                    report(1, 3, n=1), report(1, 3, n=1))
    assert run(box, at(1, 4)).counts == {"skipped": 1, "expected": 1, "duplicate": 1}
    assert check(box, at(1, 6, 1)) == []


def test_a_restart_with_the_same_database_opens_no_second_ticket(box, tmp_path):
    check(box, at(1, 6, 1))
    again = Harness.__new__(Harness)  # a new process: settings read again, same database
    again.__dict__.update(box.__dict__, settings=load_settings(box.settings.source))
    assert check(again, at(1, 6, 1)) == [] and check(again, at(1, 7)) == []
    assert len(box.tickets()) == 1


def test_status_lists_each_entry_with_last_arrival_and_next_deadline(box, capsys):
    box.mailbox.add(report(1, 3))
    run(box, at(1, 4))
    capsys.readouterr()
    assert poller(box.settings.source, "status", "--no-mailbox", "--json") == 5  # no pass yet
    (entry,) = json.loads(capsys.readouterr().out)["expected"]
    assert entry["name"] == "nightly backup DC01"
    assert entry["last_arrival"] == "2026-12-01T03:00:00+00:00"
    assert entry["next_deadline"].endswith("06:00:00+00:00")
    assert (entry["misses"], entry["open_ticket"]) == (0, None)


@pytest.mark.parametrize(("text", "message"), [
    (EXPECT.replace('"0 6 * * *"', '"0 25 * * *"'),
     "expect 'nightly backup DC01': deadline: not a 5-field cron expression"),
    (EXPECT.replace('"0 6 * * *"', '"0 6 * *"'), "deadline: not a 5-field cron expression"),
    (EXPECT.replace('priority = "High"', 'priority = "High"\npriorty = "x"'),
     "expect 'nightly backup DC01': priorty: unknown key"),
    (EXPECT.replace("subject = '^", "subject = '(?=x)^"), "subject: not an RE2 pattern"),
    (EXPECT.replace('organization = "Client One"\n', ""), "organization: is required"),
])
def test_a_bad_expect_entry_is_refused_at_load(tmp_path, text, message):
    (tmp_path / "rules.toml").write_text(text)
    config = write_settings(tmp_path, None, rules={"file": "rules.toml"})
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert message in str(caught.value) and "rules.toml" in str(caught.value)
    assert poller(config, "check") == 2


def test_a_timezone_that_does_not_exist_is_refused(tmp_path):
    config = write_settings(tmp_path, None, rules={"timezone": "Mars/Olympus"})
    with pytest.raises(ConfigError, match="timezone: 'Mars/Olympus' is not a time zone"):
        load_settings(config)


def test_the_metrics_textfile_shows_each_entry(box, tmp_path):
    from poller.service import metrics

    check(box, at(1, 6, 1))
    path = tmp_path / "ates.prom"
    with opened_store(box.settings) as store:
        metrics.write_textfile(path, store.db, box.settings.imap.name, ("nightly backup DC01",))
    text = path.read_text()
    assert 'ates_poller_expected_misses_total{entry="nightly backup DC01"' in text
    assert 'ates_poller_expected_open_ticket{entry="nightly backup DC01"' in text


def test_serve_starts_a_pass_at_each_deadline_and_a_reload_replans_them(box, tmp_path):
    from poller.service.scheduler import DEADLINE_JOB, Service

    service = Service(box.settings, str(box.settings.source))
    service._schedule_deadlines(box.settings)
    (job,) = [j for j in service.scheduler.get_jobs() if j.id.startswith(DEADLINE_JOB)]
    assert job.id == f"{DEADLINE_JOB}nightly backup DC01" and "hour='6'" in str(job.trigger)
    (tmp_path / "rules.toml").write_text(EXPECT.replace("nightly backup DC01", "weekly report")
                                         .replace('"0 6 * * *"', '"0 7 * * 1"'))
    service._schedule_deadlines(load_settings(box.settings.source))
    (job,) = [j for j in service.scheduler.get_jobs() if j.id.startswith(DEADLINE_JOB)]
    assert job.id == f"{DEADLINE_JOB}weekly report" and "day_of_week='1'" in str(job.trigger)
