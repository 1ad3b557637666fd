"""The command line without a mailbox: help, import, parse, and what it says about bad input."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys

import pytest

from poller.cli.commands import COMMANDS, command
from poller.cli.main import build_parser, command_named, main
from testkit.support import PW, REPO, alert_mail, token

SETTINGS = f"""
[imap]
host = 127.0.0.1
username = alerts
password = imap-secret
[ates]
password = {PW}
local_organization = Acme MSP
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "settings.ini"
    path.write_text(SETTINGS, encoding="utf-8")
    return path


def run(config, capsys, *args):
    capsys.readouterr()
    code = main(["--config", str(config), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")  # noqa: SLF001
    return sorted(action.choices)


@pytest.mark.parametrize("command", subcommands())
def test_every_command_has_help_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # as argparse wraps it
    assert re.search(rf"Example: poller (--config \S+ )?{command} ", out), out


def test_every_command_of_the_parser_is_dispatched_to_a_function():
    assert sorted(COMMANDS) == subcommands()
    assert all(callable(command(name)) for name in COMMANDS)


LINES = [
    ["once"], ["--config", "x.ini", "-vv", "serve"], ["--config=once", "--log-format", "json", "check"],
    ["-q", "status", "--max-age", "60", "--json"], ["requeue", "--all"], ["requeue", "<a@b>", "<c@d>"],
    ["import", "devices", "d.csv", "--column", "A=name", "--dry-run"], ["tickets", "--status", "New"],
    ["ticket", "note", "T20261127.0001", "called", "them"], ["outbox", "retry", "--failed"],
    ["messages", "--limit", "5", "--since", "2026-12-01"], ["parse", "a.eml"],
    ["copy-database", "sqlite:///x.db"], ["rules", "test", "a.eml", "--json"], ["web", "--port", "1"],
]


@pytest.mark.parametrize("argv", LINES, ids=lambda argv: next(w for w in argv if w in COMMANDS))
def test_the_parser_of_one_command_reads_its_line_as_the_whole_parser_does(argv):
    name = command_named(argv)
    assert name == next(word for word in argv if word in COMMANDS)
    assert vars(build_parser(name).parse_args(argv)) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", [[], ["-h"], ["-h", "once"], ["--config"], ["bogus"], ["-x", "once"],
                                  ["--log-format", "xml", "once"]])
def test_a_line_without_a_clear_command_gets_the_whole_parser(argv):
    assert command_named(argv) is None


def test_every_line_is_tested_with_its_command_alone():
    assert sorted({next(w for w in argv if w in COMMANDS) for argv in LINES}) == subcommands()


def test_a_cron_pass_imports_neither_serve_nor_the_other_commands_nor_unconfigured_parts():
    """`once` with password login and no webhook: no scheduler, OAuth2, webhook, metrics or
    mail parsing modules in the worker process (the reading helper parses mail); and until a
    pass finds new mail, none of the rules, the recorder, the reader or the tables' models."""
    code = ("import sys; from poller.cli.commands import command; command('once'); "
            "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True, cwd=REPO).stdout.split())
    unwanted = {"apscheduler", "poller.imap.oauth2", "poller.imap.token_providers",
                "poller.service.delivery", "poller.service.webhooks", "prometheus_client",
                "poller.service.health", "poller.cli.service_commands", "mailparser",
                "poller.service.scheduler", "poller.store.technician", "poller.service.handling",
                "poller.service.reader", "poller.ates.rules", "poller.ates.decision",
                "poller.store.record", "poller.store.schema", "poller.mail.parsed",
                "poller.store.views"}
    assert loaded & unwanted == set()


def counts(out):
    return next(line for line in out.splitlines() if line.startswith("organizations:"))


def test_import_is_idempotent_and_reports_counts(tmp_path, config, capsys):
    orgs = tmp_path / "orgs.csv"
    orgs.write_text("name,Kaseya Customer ID\nClient One,100\nClient Two,200\n")
    assert counts(run(config, capsys, "import", "organizations", str(orgs))[1]) == \
        "organizations: 2 added, 0 changed, 0 unchanged"
    before = sqlite3.connect(tmp_path / "tickets.db").execute(
        "SELECT count(*) FROM udf_value").fetchone()
    assert counts(run(config, capsys, "import", "organizations", str(orgs))[1]) == \
        "organizations: 0 added, 0 changed, 2 unchanged"
    after = sqlite3.connect(tmp_path / "tickets.db").execute(
        "SELECT count(*) FROM udf_value").fetchone()
    assert before == after == (2,)
    orgs.write_text("name,Kaseya Customer ID\nClient One,101\n")
    out = run(config, capsys, "import", "organizations", str(orgs))[1]
    assert "1 changed" in out
    assert "line 2: change organization 'Client One': Kaseya Customer ID '100' → '101'" in out


# A good row before each bad one: the import is all or nothing, so it must not be kept either.
@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("organizations", "name,Kaseya Customer ID\nA,1\n,2\n", ":3: name is empty"),
        ("organizations", "name,Colour\nA,red\n", ":1: unknown column 'Colour'"),
        ("devices", "name,organization,Kaseya Device ID\nPC1,Acme MSP,1\nPC2,Nobody Inc,2\n",
         ":3: organization 'Nobody Inc' does not exist"),
        ("contacts", "organization,first_name,last_name,email,email2,email3\n"
                     "Acme MSP,A,B,a@msp.example,,\nAcme MSP,C,D,not-an-address,,\n",
         ":3: email 'not-an-address'"),
    ],
)
def test_bad_import_row_names_its_line_and_keeps_nothing(tmp_path, config, capsys, kind, text,
                                                         message):
    path = tmp_path / "in.csv"
    path.write_text(text)
    code, _, err = run(config, capsys, "import", kind, str(path))
    assert code == 2
    assert message in err
    table = {"organizations": "organization WHERE is_local = 0", "devices": "device",
             "contacts": "contact"}[kind]
    rows = sqlite3.connect(tmp_path / "tickets.db").execute(
        f"SELECT count(*) FROM {table}").fetchone()
    assert rows == (0,)


def test_parse_shows_extraction_and_decision_without_writing(tmp_path, config, capsys):
    mail = tmp_path / "alert.eml"
    mail.write_bytes(alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:8932")))
    code, out, _ = run(config, capsys, "parse", str(mail))
    assert code == 0
    shown = json.loads(out)
    assert shown["token"]["alert_id"] == {"source": "Kaseya", "value": "8932"}
    assert shown["decision"]["outcome"] == "created"
    assert PW not in out
    assert not (tmp_path / "tickets.db").exists()


def test_parse_reports_why_a_mail_is_not_an_alert(tmp_path, config, capsys):
    mail = tmp_path / "note.eml"
    mail.write_bytes(b"Subject: hello\r\n\r\nno token here\r\n")
    shown = json.loads(run(config, capsys, "parse", str(mail))[1])
    assert shown["error"] == "TokenMissing"


def test_bad_settings_exit_2_before_any_io(tmp_path, capsys):
    path = tmp_path / "settings.ini"
    path.write_text("[imap]\nhost = h\n")
    code = main(["--config", str(path), "once"])
    assert code == 2
    assert "[imap] username: is required" in capsys.readouterr().err
    assert not (tmp_path / "tickets.db").exists()


def test_unreachable_server_exits_3(tmp_path, capsys):
    path = tmp_path / "settings.ini"
    # port 1 on loopback: nothing listens there, the connection is refused at once; one
    # attempt, as the retries and their back-off are test_faults.py's
    path.write_text(SETTINGS.replace("host = 127.0.0.1", "host = 127.0.0.1\nport = 1\n"
                                     "security = none") + "[retry]\nattempts = 1\n")
    assert main(["--config", str(path), "once"]) == 3
    assert "imap-secret" not in capsys.readouterr().err
