"""Rules for alert mail without a token ([rules] file): the shipped examples (fixtures/rules/)
go through the same ATES rules as token mail, in order through one store; a forged sender, a
reply or a token mail is not taken by a rule; a bad rules file is refused at load naming the
file, the rule and the field; `poller rules test` says what the worker would do."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from poller.ates.mailrules import MailRule, RuleSet, apply
from poller.ates.reading import read
from poller.config import load_settings
from poller.errors import ConfigError
from poller.mail.message import parse_message
from testkit.harness import NOW, Harness
from testkit.support import alert_mail, poller, poller_json, token, write_settings

RULES = Path(__file__).resolve().parent.parent / "fixtures" / "rules"
MAILS = sorted(RULES.glob("*.eml"))
AUTHSERV = "mx.msp.example"
SECTION = {"file": str(RULES / "rules.toml"), "authserv_id": AUTHSERV}


def _expected(path: Path) -> dict:
    return json.loads(path.with_suffix(".expected.json").read_text())


@pytest.fixture
def box(tmp_path, reader) -> Harness:
    harness = Harness(tmp_path, reader, rules=SECTION)
    (tmp_path / "orgs.csv").write_text(
        "name,Nagios Customer ID,APC Customer ID,Synology Customer ID,Veeam Customer ID\n"
        "Client One,client-one.example,client-one.example,client-one.example,"
        "backup.client-one.example\n")
    (tmp_path / "devs.csv").write_text(
        "name,organization,Nagios Device ID,APC Device ID,Synology Device ID\n"
        "SRV1,Client One,srv1,,\nUPS01,Client One,,ups01,\nNAS01,Client One,,,NAS01\n")
    assert poller(harness.settings.source, "import", "organizations",
                  str(tmp_path / "orgs.csv")) == 0
    assert poller(harness.settings.source, "import", "devices", str(tmp_path / "devs.csv")) == 0
    return harness


def test_the_shipped_examples_give_their_expected_outcomes_in_order(box):
    for path in MAILS:
        box.mailbox.add(path.read_bytes())
    box.run()
    rows = box.messages()
    assert [r["outcome"] for r in rows] == [_expected(p)["outcome"] for p in MAILS]
    tickets = {t["title"]: t for t in box.tickets()}
    assert set(tickets) == {"srv1 Disk Usage is CRITICAL",
                            "UPS01: UPS: On battery power in response to an input power problem.",
                            "Volume 1 on NAS01 has entered degraded mode",
                            "Veeam Backup job DC01: Failed"}
    assert {t["organization"] for t in tickets.values()} == {"Client One"}
    disk = tickets["srv1 Disk Usage is CRITICAL"]
    assert (disk["device"], disk["status"], disk["occurrences"]) == ("SRV1", "Complete", 2)
    assert disk["udfs"] == {"Nagios Alert ID": "srv1/Disk Usage"}
    assert "DISK CRITICAL" in disk["description"]
    assert tickets["Volume 1 on NAS01 has entered degraded mode"]["device"] == "NAS01"
    assert tickets["Veeam Backup job DC01: Failed"]["status"] == "Complete"
    forged = rows[7]
    assert "rule 'veeam-job' matched but did not take it: not authenticated" in forged["reason"]


@pytest.mark.parametrize("path", MAILS, ids=[p.stem for p in MAILS])
def test_rules_test_names_the_rule_and_the_fields(tmp_path, path, capsys):
    config = write_settings(tmp_path, None, rules=SECTION)
    out = poller_json(config, capsys, "rules", "test", str(path))
    expected = _expected(path)
    assert out["rule"] == expected["rule"]
    for key, value in expected["fields"].items():
        assert out["fields"][key] == value
    if expected["rule"] is None:
        assert out["decision"]["outcome"] == "skipped"
        assert [a["rule"] for a in out["attempts"]] == ["veeam-job", "apc-ups",
                                                         "synology-storage", "nagios"]
    assert not (tmp_path / "tickets.db").exists()  # nothing written


def test_rules_test_shows_the_closest_rule_and_the_pattern_that_did_not_match(tmp_path, capsys):
    config = write_settings(tmp_path, None, rules=SECTION)
    assert poller(config, "rules", "test", str(RULES / "10_unknown_tool.eml")) == 0
    out = capsys.readouterr().out
    assert "rule:     none" in out and "closest:  apc-ups: its subject pattern did not match" in out
    assert "decision: skipped" in out


def test_a_token_mail_is_handled_by_its_token_even_when_a_rule_matches(box):
    raw = alert_mail(subject="** PROBLEM Service Alert: srv1/Disk Usage is CRITICAL **",
                     body="Notification Type: PROBLEM",
                     tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:9"))
    box.mailbox.add(raw)
    assert box.run().counts == {"created": 1}
    (ticket,) = box.tickets()
    assert ticket["udfs"] == {"Kaseya Alert ID": "9"}


LOOSE = """[[rule]]
name = "loose"
source = "Nagios"
subject = '(?P<type>PROBLEM|RECOVERY) Service Alert: (?P<host>[^/ ]+)/(?P<service>.+?) is'
alert_id = "{host}/{service}"
"""


@pytest.mark.parametrize(("subject", "body"), [
    ("RE: ** RECOVERY Service Alert: srv1/Disk Usage is OK **", "Looks fixed."),
    ("[EXTERNAL] AW: ** RECOVERY Service Alert: srv1/Disk Usage is OK **", "Erledigt."),
    ("** RECOVERY Service Alert: srv1/Disk Usage is OK **",
     "FYI\n\nDe : Nagios\nEnvoyé : dimanche\nÀ : alerts\nObjet : ** PROBLEM **\n\nDISK"),
    ("Fwd: ** PROBLEM Service Alert: srv1/Disk Usage is CRITICAL **", "see below"),
], ids=["reply", "tagged-german-reply", "outlook-forward-without-prefix", "forward"])
def test_a_reply_or_forward_of_a_rule_mail_opens_and_closes_nothing(tmp_path, reader, subject,
                                                                     body):
    """A rule written without ^ matches a reply's subject too; the mail is still a person's."""
    (tmp_path / "loose.toml").write_text(LOOSE)
    box = Harness(tmp_path, reader, rules={"file": "loose.toml"})
    box.mailbox.add(b"From: n@x\nMessage-ID: <p1@x>\nSubject: ** PROBLEM Service Alert: "
                    b"srv1/Disk Usage is CRITICAL **\n\nDISK CRITICAL\n")
    assert box.run().counts == {"created": 1}
    box.mailbox.add(f"From: Jane <jane@msp.example>\nMessage-ID: <r1@x>\nSubject: {subject}\n"
                    f"Content-Type: text/plain; charset=utf-8\n\n{body}\n".encode())
    assert box.run().counts == {"skipped": 1}
    (ticket,) = box.tickets()
    assert ticket["status"] == "New" and ticket["occurrences"] == 1
    assert "not the sender's own" in box.messages()[-1]["reason"]


def test_a_forged_sender_cannot_close_what_an_authenticated_rule_opened(box):
    box.mailbox.add((RULES / "07_veeam_failed.eml").read_bytes())
    forged = (RULES / "09_veeam_success.eml").read_bytes().replace(
        b"Authentication-Results: mx.msp.example;", b"Authentication-Results: evil.example;")
    box.mailbox.add(forged)
    assert box.run().counts == {"created": 1, "skipped": 1}
    assert box.tickets()[0]["status"] == "New"
    assert "no Authentication-Results header of mx.msp.example" in box.messages()[-1]["reason"]


def _rules_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return write_settings(tmp_path, None, rules={"file": "rules.toml", "authserv_id": AUTHSERV})


@pytest.mark.parametrize(("text", "message"), [
    ('[[rule]]\nname = "r1"\nsource = "S"\nsubject = \'(a)\\1\'\n',
     "rule 'r1': subject: not an RE2 pattern: invalid escape sequence"),
    ('[[rule]]\nname = "r1"\nsource = "S"\nbody = \'(?=x)y\'\n',
     "rule 'r1': body: not an RE2 pattern: invalid perl operator"),
    ('[[rule]]\nname = "r1"\nsource = "S"\nfrom = \'(\'\n', "rule 'r1': from: not an RE2 pattern"),
    ('[[rule]]\nname = "r1"\nsource = "S"\nsubject = "x"\nclear = \'(?<=a)b\'\n',
     "rule 'r1': clear: not an RE2 pattern"),
    ('[[rule]]\nname = "r1"\nsource = "S"\nsubject = "x"\nsubjct = "y"\n',
     "rule 'r1': subjct: unknown key"),
    ('[[rule]]\nname = "r1"\nsource = "S"\nsubject = "x"\n[[expectt]]\nname = "e"\n',
     "unknown key 'expectt'"),
    ('[[rule]]\nname = "r1"\nsource = "S"\nsubject = "(?P<a>x)"\nalert_id = "{b}"\n',
     "rule 'r1': alert_id: {b} names no group"),
    ('[[rule]]\nname = "r1"\nsubject = "x"\n', "rule 'r1': source: is required"),
    ('[[rule]]\nname = "r1"\nsource = "S"\n', "a rule needs at least one pattern"),
    ('[[rule]]\nname = "r1"\nsource = "S"\nsubject = "x"\nauthenticated = "yes"\n',
     "rule 'r1': authenticated: must be true or false"),
    ('[[rule]]\nname = "r1"\nsource = "S"\nsubject = "x"\n[[rule]]\nname = "r1"\nsource = "S"\n'
     'subject = "y"\n', "rule 'r1': another rule has this name"),
    ("[[rule]\n", "not valid TOML"),
])
def test_a_bad_rules_file_is_refused_at_load_naming_file_rule_and_field(tmp_path, capsys, text,
                                                                         message):
    config = _rules_file(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert message in str(caught.value) and "rules.toml" in str(caught.value)
    assert poller(config, "check") == 2  # check loads the rules file too
    assert message in capsys.readouterr().err


def test_an_authenticated_rule_needs_the_authserv_id(tmp_path):
    (tmp_path / "rules.toml").write_text(
        '[[rule]]\nname = "r1"\nsource = "S"\nsubject = "x"\nauthenticated = true\n')
    config = write_settings(tmp_path, None, rules={"file": "rules.toml"})
    with pytest.raises(ConfigError, match="authenticated: needs \\[rules\\] authserv_id"):
        load_settings(config)


def test_a_missing_rules_file_is_refused(tmp_path):
    config = write_settings(tmp_path, None, rules={"file": "nowhere.toml"})
    with pytest.raises(ConfigError, match="nowhere.toml does not exist"):
        load_settings(config)


def test_without_a_rules_file_a_mail_without_a_token_is_skipped_as_before():
    reading = read(1, (RULES / "01_nagios_problem.eml").read_bytes(), NOW)
    assert reading.alert is None and reading.problem == "no <Autotask> token in the mail"


def test_every_pattern_a_rule_gives_must_match_and_the_first_rule_wins():
    message = parse_message((RULES / "04_apc_on_battery.eml").read_bytes())
    rules = RuleSet((MailRule("a", "S", (("subject", "UPS"), ("body", "nothing like this"))),
                     MailRule("b", "S", (("from", "client-one"), ("subject", "battery"))),
                     MailRule("c", "S", (("subject", "UPS"),))))
    match, attempts = apply(rules, message, "Hostname : ups01", explain=True)
    assert match.rule.name == "b"
    assert [(a.rule, a.matched, a.missed) for a in attempts] == [
        ("a", ("subject",), "body"), ("b", ("from", "subject"), "")]
    match, attempts = apply(rules, message, "Hostname : ups01")  # the rules that matched only
    assert match.rule.name == "b" and [a.rule for a in attempts] == ["b"]


def test_text_with_a_byte_no_decoder_could_read_is_matched_too():
    message = parse_message(b"From: a@client-one.example\nSubject: UPS01: UPS: \xff on battery\n"
                            b"\nHostname : ups01\n")
    message = replace(message, subject="UPS01: UPS: \udcff on battery")
    rules = RuleSet((MailRule("u", "APC", (("subject", "UPS: (?P<x>.+)$"),)),))
    match, _ = apply(rules, message, "Hostname : ups01 \udcff")
    assert match is not None and match.rule.name == "u"


def test_rules_test_without_a_rules_file_is_an_error(tmp_path, capsys):
    config = write_settings(tmp_path, None)
    assert poller(config, "rules", "test", str(MAILS[0])) == 2
    assert "no [rules] file is set" in capsys.readouterr().err
