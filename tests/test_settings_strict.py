"""Settings that refuse typos: unknown sections, keys and POLLER_ variables, empty values where a
value is needed; and `check` saying where each effective value came from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from poller.ates.policy import MASK
from poller.ates.rules import ticket_fields
from poller.ates.token import AtesToken
from poller.cli.main import main
from poller.config import load_settings
from poller.config.keys import EMPTY_MEANS_NONE, KEYS
from poller.config.sections import Section
from poller.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = """[imap]
host = 127.0.0.1
username = alerts
password = imap-secret
[ates]
password = ates-secret
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.ini"
    path.write_text(text, encoding="utf-8")
    return path


def refusal(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ=environ or {})
    return str(info.value)


@pytest.mark.parametrize(("text", "expected"), [
    (MINIMAL.replace("password = imap-secret", "pasword = imap-secret"),
     "settings.ini:4: [imap] pasword: unknown key (did you mean `password`?)"),
    (MINIMAL + "fetch_chunck = 50\n", "settings.ini:7: [ates] fetch_chunck: unknown key "
                                      "(did you mean `fetch_chunk` in [imap]?)"),
    (MINIMAL.replace("username = alerts", "username = alerts\nfetch_chunck = 50"),
     "settings.ini:4: [imap] fetch_chunck: unknown key (did you mean `fetch_chunk`?)"),
    (MINIMAL + "[duplicate]\naction = new\n",
     "settings.ini:7: [duplicate]: unknown section (did you mean `[duplicates]`?)"),
    (MINIMAL + "[Tickets]\nqueue = Triage\n",
     "settings.ini:7: [Tickets]: unknown section (did you mean `[tickets]`?)"),
    (MINIMAL + "[limits]\nfetch_chunk = 50\n",
     "settings.ini:8: [limits] fetch_chunk: unknown key (`fetch_chunk` belongs in [imap])"),
    (MINIMAL + "[zzz]\n", "[zzz]: unknown section (known: [imap], [oauth2], [mailbox]"),
    (MINIMAL + "[metrics]\nxyz = 1\n", "[metrics] xyz: unknown key (known: textfile)"),
    # [DEFAULT] would copy its keys into every section: a section like any other here
    ("[DEFAULT]\ntimeout = 5\n" + MINIMAL, "settings.ini:1: [DEFAULT]: unknown section"),
    # [oauth2] is read only with auth = xoauth2 | oauthbearer; a typo there is found anyway
    (MINIMAL + "[oauth2]\nprovder = generic\n",
     "[oauth2] provder: unknown key (did you mean `provider`?)"),
])
def test_an_unknown_section_or_key_is_refused_with_its_line_and_the_closest_name(
        tmp_path, text, expected):
    assert expected in refusal(tmp_path, text)


@pytest.mark.parametrize(("variable", "expected"), [
    ("POLLER_IMAP_PASWORD", "environment variable POLLER_IMAP_PASWORD: not a setting "
                            "(did you mean `POLLER_IMAP_PASSWORD`?"),
    ("POLLER_DUPLICATE_ACTION", "did you mean `POLLER_DUPLICATES_ACTION`?"),
    ("POLLER_CONFIGG", "did you mean `POLLER_CONFIG`?"),
    ("POLLER_QQQQQQQQQQQQQQQQQQQQQ", "not a setting (settings are POLLER_<SECTION>_<KEY>"),
])
def test_an_unknown_poller_variable_is_refused_with_the_closest_name(tmp_path, variable,
                                                                     expected):
    assert expected in refusal(tmp_path, MINIMAL, {variable: "x", "PATH": "/usr/bin"})


def test_poller_config_and_other_variables_are_not_settings_and_are_left_alone(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL),
                             environ={"POLLER_CONFIG": "elsewhere.ini", "POLLERX": "1",
                                      "poller_imap_pasword": "lower case: not ours"})
    assert settings.imap.password == "imap-secret"


def test_a_typo_exits_2_before_any_io(tmp_path, capsys):
    # the password file does not exist and the database is not there: neither is looked at
    path = write(tmp_path, MINIMAL.replace("password = imap-secret",
                                           "password_file = /nonexistent/pw\nverfy = false"))
    assert main(["--config", str(path), "import", "organizations", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "[imap] verfy: unknown key (did you mean `verify`?)" in err
    assert "password_file" not in err
    assert not (tmp_path / "tickets.db").exists()


@pytest.mark.parametrize(("text", "environ", "expected"), [
    (MINIMAL.replace("host = 127.0.0.1", "host = 127.0.0.1\nport ="), {},
     "[imap] port: is empty in {path}:3: give a value"),
    (MINIMAL, {"POLLER_IMAP_FOLDER": ""}, "[imap] folder: is empty in POLLER_IMAP_FOLDER"),
    (MINIMAL + "[webhook]\nevents =\n", {}, "[webhook] events: is empty in {path}:8"),
    (MINIMAL + "[schedule]\nlock_file =\n", {}, "[schedule] lock_file: is empty"),
    (MINIMAL + "[mailbox]\non_success = \n", {}, "[mailbox] on_success: is empty"),
    (MINIMAL.replace("host = 127.0.0.1", "host ="), {},
     "[imap] host: is required (it is empty in {path}:2)"),
    # an empty password is not "no password": the file's password_file is not used instead
    (MINIMAL.replace("password = ates-secret", "password =\npassword_file = ates.pw"), {},
     "[ates] password: is empty"),
])
def test_an_empty_value_where_one_is_needed_is_refused_naming_the_key(tmp_path, text, environ,
                                                                       expected):
    assert expected.format(path=tmp_path / "settings.ini") in refusal(tmp_path, text, environ)


def test_an_empty_tickets_queue_means_no_queue_not_the_default(tmp_path):
    text = MINIMAL + "[tickets]\nqueue =\npriority = High\n"
    tickets = load_settings(write(tmp_path, text), environ={}).policy().tickets
    assert (tickets.queue, tickets.priority) == ("", "High")
    fields = ticket_fields(tickets, AtesToken(pw="x"))
    assert (fields.queue, fields.priority, fields.source) == (None, "High", "Monitoring Alert")


OAUTH2 = """[imap]
host = 127.0.0.1
username = alerts
auth = xoauth2
[oauth2]
provider = generic
client_id = poller
client_secret_file = secret
token_url = https://idp.example/token
scope = imap
[ates]
password = ates-secret
"""


@pytest.mark.parametrize(("section", "key"), sorted(EMPTY_MEANS_NONE))
def test_each_key_documented_as_empty_none_loads_empty_as_none(tmp_path, section, key):
    (tmp_path / "secret").write_text("s3cret\n")
    text = OAUTH2 if section == "oauth2" else MINIMAL
    settings = load_settings(write(tmp_path, text + f"[{section}]\n{key} =\n" if section not in
                                   text else text.replace(f"[{section}]\n",
                                                          f"[{section}]\n{key} =\n")),
                             environ={})
    shown = settings.redacted()[section]
    field = {"url": "url", "textfile": "textfile", "password_file": "password"}.get(key, key)
    assert shown[field] in (None, "")


def test_readme_says_empty_none_exactly_for_those_keys_and_documents_every_key():
    rows = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
            if re.match(r"\| [a-z0-9]+ \| `", line)]
    documented: dict[tuple[str, str], str] = {}
    for row in rows:
        section, keys, rest = row.split(" | ", 2)
        for key in re.findall(r"`([a-z0-9_]+)`", keys):
            documented[(section.strip("| "), key)] = rest
    known = {(s, k) for s, keys in KEYS.items() for k in keys}
    # client_secret is known only to be refused with its own message (secrets from files)
    assert sorted(known - {("oauth2", "client_secret")} - set(documented)) == []
    assert sorted(set(documented) - known) == []
    said = {key for key, rest in documented.items() if "empty: none" in rest}
    assert sorted(said) == sorted(EMPTY_MEANS_NONE)


def test_reading_a_key_that_is_not_listed_is_a_bug_caught_at_once():
    with pytest.raises(LookupError, match="not in poller.config.keys.KEYS"):
        Section("imap", {}).str("colour")


def test_check_prints_where_each_value_came_from_with_secrets_masked(tmp_path, capsys):
    path = write(tmp_path, MINIMAL.replace("host = 127.0.0.1", "host = 127.0.0.1\nport = 1\n"
                                           "security = none") + "[retry]\nattempts = 1\n")
    environ = {"POLLER_IMAP_PASSWORD": "env-secret", "POLLER_SCHEDULE_INTERVAL": "60"}
    settings = load_settings(path, environ=environ)
    assert settings.origin("imap", "port") == f"{path}:3"
    assert settings.origin("ates", "passwords") == f"{path}:8 (password)"
    assert settings.origin("imap", "password") == "POLLER_IMAP_PASSWORD"
    assert settings.origin("imap", "timeout") == "default"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        assert main(["--config", str(path), "check"]) == 3  # nothing listens on port 1
    out = capsys.readouterr().out
    assert f"port = 1    ({path}:3)" in out
    assert f"password = {MASK}    (POLLER_IMAP_PASSWORD)" in out
    assert f"passwords = {MASK}    ({path}:8 (password))" in out
    assert "interval = 60    (POLLER_SCHEDULE_INTERVAL)" in out
    assert "fetch_chunk = 200    (default)" in out
    assert not {"imap-secret", "ates-secret", "env-secret"} & set(re.findall(r"\w+-secret", out))
