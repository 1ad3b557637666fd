"""The commands an operator runs: check, status, requeue; the metrics textfile; JSON logs."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from testkit.serving import query
from testkit.support import PW, alert_mail, poller, token, write_settings


def samples(path, mailbox: str) -> dict[tuple[str, tuple], float]:
    """Return the textfile's samples by name and labels, all of them labelled with the mailbox
    (the label is left out of the keys)."""
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            labels = dict(sample.labels)
            assert labels.pop("mailbox") == mailbox
            out[(sample.name, tuple(sorted(labels.items())))] = sample.value
    return out


# -- check -----------------------------------------------------------------------------------

def test_check_prints_masked_settings_creates_folders_and_exits_0(tmp_path, imap_account, capsys):
    config = write_settings(tmp_path, imap_account, mailbox={"on_success": "move",
                                                             "processed_folder": "Done"})
    assert poller(config, "check") == 0
    out = capsys.readouterr().out
    assert "[imap]" in out and "password = ********" in out and "passwords = ********" in out
    assert imap_account.password not in out and PW not in out
    assert f"lock_file = {tmp_path}/tickets.db.{imap_account.username}@127.0.0.1_" in out
    assert "offers IDLE" in out and "FAILED" not in out
    assert {"Quarantine", "Done"} <= set(imap_account.folders())
    assert query(tmp_path / "tickets.db", "SELECT count(*) FROM pass_log") == [(0,)]


@pytest.mark.parametrize(("overrides", "code", "expected"), [
    ({"imap": {"password": "Wr0ngPassw0rd"}}, 3, "refused the login"),
    ({"imap": {"folder": "Missing"}}, 6, "'Missing'"),
    ({"database": {"url": "sqlite:///{tmp}/file/tickets.db"}}, 7, "cannot open database"),
    ({"metrics": {"textfile": "{tmp}/missing/poller.prom"}}, 7, "missing or not writable"),
])
def test_check_exit_code_names_the_part_that_failed(tmp_path, imap_account, capsys, overrides,
                                                    code, expected):
    (tmp_path / "file").write_text("a file where a folder should be")
    sections = {name: {k: v.format(tmp=tmp_path) for k, v in keys.items()}
                for name, keys in overrides.items()}
    config = write_settings(tmp_path, imap_account, **sections)
    assert poller(config, "check") == code
    captured = capsys.readouterr()
    failed = [line for line in captured.out.splitlines() if " FAILED " in line]
    assert failed and expected in failed[0]
    assert "Wr0ngPassw0rd" not in captured.out + captured.err


def test_check_with_bad_settings_exits_2(tmp_path, imap_account, capsys):
    config = write_settings(tmp_path, imap_account, schedule={"interval": "soon"})
    assert poller(config, "check") == 2
    assert "[schedule] interval: expected a whole number" in capsys.readouterr().err


# -- status ----------------------------------------------------------------------------------

def status(config, capsys, *args: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = poller(config, "status", "--json", *args)
    return code, json.loads(capsys.readouterr().out)


def test_status_reports_passes_waiting_mail_quarantine_and_tickets(tmp_path, imap_account,
                                                                   capsys):
    config = write_settings(tmp_path, imap_account)
    assert poller(config, "status") == 3  # no database yet, and status does not make one
    assert "does not exist" in capsys.readouterr().err
    assert poller(config, "check") == 0  # which does
    code, report = status(config, capsys)
    assert code == 5 and report["last_good_pass"] is None and report["stale"] is True
    imap_account.append("INBOX", alert_mail(tok=token(AlertID="Kaseya:1")))
    imap_account.append("INBOX", alert_mail(tok=token(pw="wrong", AlertID="Kaseya:2")))
    assert poller(config, "once") == 0
    imap_account.append("INBOX", alert_mail(tok=token(AlertID="Kaseya:3")))
    code, report = status(config, capsys)
    assert code == 0 and report["stale"] is False
    assert report["last_pass"]["ok"] is True
    assert report["last_pass"]["counts"] == "created=1 quarantined=1"
    assert (report["waiting"], report["quarantine"], report["open_tickets"]) == (1, 1, 1)
    assert poller(config, "status") == 0
    out = capsys.readouterr().out
    assert "mail waiting:     1" in out and "quarantine:       1" in out


def test_status_exits_5_when_the_last_good_pass_is_too_old(tmp_path, imap_account, capsys):
    config = write_settings(tmp_path, imap_account, status={"max_age": "600"})
    assert poller(config, "once") == 0
    with sqlite3.connect(tmp_path / "tickets.db") as db:
        db.execute("UPDATE pass_log SET finished = '2020-01-01T00:00:00+00:00'")
    code, report = status(config, capsys, "--no-mailbox")
    assert code == 5 and report["stale"] is True and report["max_age_seconds"] == 600
    code, _ = status(config, capsys, "--no-mailbox", "--max-age", str(10 ** 10))
    assert code == 0


def test_status_after_failed_passes_shows_the_error_and_goes_stale(tmp_path, imap_account,
                                                                  capsys):
    config = write_settings(tmp_path, imap_account)
    assert poller(config, "once") == 0
    write_settings(tmp_path, imap_account, imap={"password": "Wr0ngPassw0rd"})
    assert poller(config, "once") == 3
    code, report = status(config, capsys, "--max-age", "1000")
    assert code == 3  # the good pass is recent, but the mailbox cannot be looked at
    assert report["last_pass"]["ok"] is False
    assert "refused the login" in report["last_pass"]["error"]
    assert "refused the login" in report["mailbox_error"]
    assert report["passes_failed"] == 1 and report["passes_ok"] == 1


# -- metrics ---------------------------------------------------------------------------------

def test_metrics_textfile_is_written_after_each_pass(tmp_path, imap_account):
    prom = tmp_path / "metrics" / "ates_poller.prom"
    prom.parent.mkdir()
    config = write_settings(tmp_path, imap_account, metrics={"textfile": str(prom)})
    imap_account.append("INBOX", alert_mail(tok=token(AlertID="Kaseya:1")))
    imap_account.append("INBOX", alert_mail(tok=token(AlertID="Kaseya:1")))
    imap_account.append("INBOX", alert_mail(tok=token(pw="wrong")))
    before = time.time()
    assert poller(config, "once") == 0
    after = time.time()
    values = samples(prom, f"{imap_account.username}@127.0.0.1/INBOX")
    assert values[("ates_poller_passes_total", (("result", "ok"),))] == 1
    assert values[("ates_poller_mails_total", (("outcome", "created"),))] == 1
    assert values[("ates_poller_mails_total", (("outcome", "appended"),))] == 1
    assert values[("ates_poller_mails_total", (("outcome", "quarantined"),))] == 1
    assert values[("ates_poller_mails_total", (("outcome", "duplicate"),))] == 0
    assert values[("ates_poller_open_tickets", ())] == 1
    assert ("ates_poller_last_pass_duration_seconds", ()) in values
    success = values[("ates_poller_last_success_timestamp_seconds", ())]
    assert int(before) <= success <= after  # Unix time (whole seconds), as Prometheus' time()
    write_settings(tmp_path, imap_account, metrics={"textfile": str(prom)},
                   imap={"password": "Wr0ngPassw0rd"})
    assert poller(config, "once") == 3
    values = samples(prom, f"{imap_account.username}@127.0.0.1/INBOX")
    assert values[("ates_poller_errors_total", ())] == 1
    assert values[("ates_poller_passes_total", (("result", "failed"),))] == 1
    assert values[("ates_poller_last_success_timestamp_seconds", ())] == success
    assert [p.name for p in prom.parent.iterdir()] == [prom.name]  # no temporary files left


# -- requeue ---------------------------------------------------------------------------------

def test_requeue_brings_quarantined_mail_back_once_the_cause_is_fixed(tmp_path, server_account,
                                                                      capsys):
    imap_account = server_account
    new_pw = "N3wAtesPassw0rd"
    config = write_settings(tmp_path, imap_account)
    imap_account.append("INBOX", alert_mail(message_id="<rotated@mon.example>",
                                            tok=token(pw=new_pw, AlertID="Kaseya:1")))
    imap_account.append("INBOX", alert_mail(message_id="<other@mon.example>",
                                            tok=token(pw=new_pw, AlertID="Kaseya:2")))
    assert poller(config, "once") == 0
    assert len(imap_account.messages("Quarantine")) == 2
    write_settings(tmp_path, imap_account, ates={"password": f"{PW}, {new_pw}"})
    assert poller(config, "requeue", "rotated@mon.example", "<nowhere@mon.example>") == 2
    out = capsys.readouterr().out
    assert "requeued 1 mail" in out and "not in the quarantine: <nowhere@mon.example>" in out
    ((_, flags, _),) = imap_account.messages("INBOX")
    assert flags == ()  # unread again, so the next pass takes it
    assert poller(config, "once") == 0
    assert poller(config, "requeue", "--all") == 0
    assert poller(config, "once") == 0
    capsys.readouterr()
    assert poller(config, "tickets", "--json") == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert imap_account.messages("Quarantine") == []


# -- logs ------------------------------------------------------------------------------------

def test_json_logs_have_one_object_per_line_with_mail_and_pass_fields(tmp_path, imap_account,
                                                                      capsys):
    config = write_settings(tmp_path, imap_account)
    imap_account.append("INBOX", alert_mail(message_id="<j@mon.example>",
                                            tok=token(AlertID="Kaseya:9")))
    assert poller(config, "--log-format", "json", "once") == 0
    entries = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (mail,) = [e["mail"] for e in entries if "mail" in e]
    assert mail["message_id"] == "<j@mon.example>" and mail["outcome"] == "created"
    assert mail["ticket"].startswith("T") and mail["uid"] == 1
    (summary,) = [e["pass"] for e in entries if "pass" in e]
    assert summary["counts"] == {"created": 1} and summary["interrupted"] is False
