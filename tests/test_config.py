"""settings.ini loading: defaults, environment overrides, secrets from files, precise errors."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from poller.ates.policy import DEFAULT_CLEAR_PATTERN, MASK
from poller.config import load_settings
from poller.config.sections import Section
from poller.errors import ConfigError

MINIMAL = """
[imap]
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


def test_minimal_settings_get_documented_defaults(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL), environ={})
    assert settings.imap.port == 993 and settings.imap.security == "ssl"
    assert settings.imap.folder == "INBOX" and settings.imap.verify is True
    assert settings.mailbox.on_success == "flag" and settings.mailbox.on_no_token == "leave"
    assert settings.duplicates.action == "note"
    assert settings.database.url == f"sqlite:///{tmp_path}/tickets.db"


def test_sample_settings_file_loads_and_every_key_in_it_is_read(tmp_path, monkeypatch):
    sample = (Path(__file__).resolve().parent.parent / "settings.ini").read_text(encoding="utf-8")
    (tmp_path / "secret").write_text("s3cret\n")
    text = re.sub(r"(?m)^password_file = .*$", f"password_file = {tmp_path}/secret", sample)
    read: set[tuple[str, str]] = set()
    original = Section.str

    def spy(self, key, *args, **kwargs):
        read.add((self.name, key))
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(Section, "str", spy)
    settings = load_settings(write(tmp_path, text), environ={})
    assert (settings.imap.password, settings.ates.passwords) == ("s3cret", ("s3cret",))
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    written = {(section, key) for section in parser.sections() for key in parser[section]}
    assert sorted(written - read) == [], "keys in the sample that no setting reads"


def test_environment_overrides_any_key(tmp_path):
    env = {"POLLER_IMAP_PASSWORD": "from-env", "POLLER_IMAP_PORT": "1143",
           "POLLER_ATES_PASSWORD": "a, b"}
    settings = load_settings(write(tmp_path, MINIMAL), environ=env)
    assert settings.imap.password == "from-env"
    assert settings.imap.port == 1143
    assert settings.ates.passwords == ("a", "b")


def test_password_file_relative_to_settings(tmp_path):
    (tmp_path / "imap.pw").write_text("file-secret\n# changed 2026-11-01 by root\n")
    text = MINIMAL.replace("password = imap-secret", "password_file = imap.pw")
    assert load_settings(write(tmp_path, text), environ={}).imap.password == "file-secret"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("host = 127.0.0.1", ""), "[imap] host: is required"),
        (("password = imap-secret", ""), "[imap] password: is required"),
        (("host = 127.0.0.1", "host = h\nport = abc"), "[imap] port: expected a whole number"),
        (("host = 127.0.0.1", "host = h\nsecurity = tls"), "[imap] security: must be one of"),
        (("[ates]", "[mailbox]\non_success = delete\n[ates]"), "[mailbox] on_success"),
        (("[ates]", "[duplicates]\ncriteria = alert_id, host\n[ates]"),
         "[duplicates] criteria: unknown host"),
        (("[ates]", "[duplicates]\nclear_pattern = (\n[ates]"), "[duplicates] clear_pattern"),
        (("[ates]", "[duplicates]\nclear_pattern = (\\w+\\s?)+$\n[ates]"),
         "[duplicates] clear_pattern: a repetition of a repetition"),
        (("[ates]", "[duplicates]\nclear_pattern = ^(ok|okay)+:\n[ates]"),
         "[duplicates] clear_pattern: a repetition of a repetition or of alternatives"),
        (("[ates]", "[database]\nurl = tickets.db\n[ates]"), "[database] url"),
        (("[ates]", "[database]\nurl = mysql://u:hunter2@db/tickets\n[ates]"),
         "[database] url: 'mysql://u:***@db/tickets' is neither an SQLite nor a PostgreSQL"),
        (("[ates]", "[database]\npassword_file = /nonexistent/pw\n[ates]"),
         "[database] password_file: cannot read"),
        (("password = imap-secret", "password_file = /nonexistent/pw"),
         "[imap] password_file: cannot read"),
        (("[ates]", "[mailbox]\nprocessed_folder = INBOX\n[ates]"),
         "[mailbox] processed_folder: must differ from [imap] folder ('INBOX')"),
        (("[ates]", "[mailbox]\nno_token_folder = inbox\n[ates]"),
         "[mailbox] no_token_folder: must differ from [imap] folder"),
        (("password = imap-secret",
          "password = imap-secret\nfolder = Alerts\n[mailbox]\nquarantine_folder = Alerts"),
         "[mailbox] quarantine_folder: must differ from [imap] folder ('Alerts')"),
        (("[ates]", "[mailbox]\nquarantine_folder = INBOX/\n[ates]"),
         "[mailbox] quarantine_folder: must differ from [imap] folder ('INBOX')"),
        (("password = imap-secret",
          "password = imap-secret\nfolder = Alerts/Kaseya\n[mailbox]\non_success = move\n"
          "processed_folder = Alerts//Kaseya/"),
         "[mailbox] processed_folder: must differ from [imap] folder ('Alerts/Kaseya')"),
    ],
)
def test_bad_settings_name_section_and_key(tmp_path, change, expected):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, MINIMAL.replace(*change, 1)), environ={})
    assert expected in str(info.value)


def test_missing_file_says_how_to_point_at_one(tmp_path):
    with pytest.raises(ConfigError, match="--config"):
        load_settings(tmp_path / "nope.ini", environ={})


def test_redacted_masks_every_secret(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL), environ={})
    shown = repr(settings.redacted()) + repr(settings)
    assert "imap-secret" not in shown and "ates-secret" not in shown
    assert settings.redacted()["imap"]["password"] == MASK


def test_the_mailbox_name_defaults_to_user_host_and_folder(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL),
                             environ={"POLLER_IMAP_FOLDER": "INBOX/Alerts"})
    assert settings.imap.name == "alerts@127.0.0.1/INBOX/Alerts"
    named = load_settings(write(tmp_path, MINIMAL), environ={"POLLER_IMAP_NAME": "Kaseya EU"})
    assert named.imap.name == "Kaseya EU"


def test_tickets_section_sets_what_the_mailbox_gives_its_tickets(tmp_path):
    defaults = load_settings(write(tmp_path, MINIMAL), environ={}).policy().tickets
    assert (defaults.queue, defaults.priority, defaults.source, defaults.issue_type) == (
        "Monitoring Alert", "Medium", "Monitoring Alert", "")
    text = MINIMAL + ("[tickets]\nqueue = Level II Support\npriority = High\nsource = Email\n"
                      "issue_type = Hardware\n")
    tickets = load_settings(write(tmp_path, text), environ={}).policy().tickets
    assert (tickets.queue, tickets.priority, tickets.source, tickets.issue_type) == (
        "Level II Support", "High", "Email", "Hardware")
def test_reading_time_and_memory_bounds_default_and_refuse_nonsense(tmp_path):
    limits = load_settings(write(tmp_path, MINIMAL), environ={}).limits
    assert (limits.max_read_seconds, limits.max_fetch_bytes) == (10, 64 * 1024 * 1024)
    for key, value, expected in [("max_read_seconds", "0", "must be at least 1, got 0"),
                                 ("max_fetch_bytes", "65536", "must be at least 1048576")]:
        with pytest.raises(ConfigError, match=rf"\[limits\] {key}: {expected}"):
            load_settings(write(tmp_path, MINIMAL + f"[limits]\n{key} = {value}\n"), environ={})
def test_readme_and_sample_settings_show_the_default_clear_pattern(tmp_path):
    root = Path(__file__).resolve().parent.parent
    (row,) = [line for line in (root / "README.md").read_text(encoding="utf-8").splitlines()
              if line.startswith("| duplicates | `clear_pattern` |")]
    documented = row.split("|", 3)[3].split("`")[1].replace("\\|", "|")
    sample = configparser.ConfigParser(interpolation=None)
    sample.read(root / "settings.ini", encoding="utf-8")
    assert documented == DEFAULT_CLEAR_PATTERN
    assert sample["duplicates"]["clear_pattern"] == DEFAULT_CLEAR_PATTERN
    settings = load_settings(write(tmp_path, MINIMAL), environ={})
    assert settings.duplicates.clear_pattern == DEFAULT_CLEAR_PATTERN


def test_a_password_file_gives_its_first_line_only(tmp_path):
    (tmp_path / "imap.pw").write_text("file-secret\nsecond line: a note\n")
    (tmp_path / "ates.pw").write_text("new-pw, old-pw\r\n# rotated on 2026-11-01\n")
    text = MINIMAL.replace("password = imap-secret", "password_file = imap.pw").replace(
        "password = ates-secret", "password_file = ates.pw")
    settings = load_settings(write(tmp_path, text), environ={})
    assert settings.imap.password == "file-secret"
    assert settings.ates.passwords == ("new-pw", "old-pw")


def test_a_password_file_with_an_empty_first_line_is_refused(tmp_path):
    (tmp_path / "imap.pw").write_text("\nfile-secret\n")
    text = MINIMAL.replace("password = imap-secret", "password_file = imap.pw")
    with pytest.raises(ConfigError, match=r"\[imap\] password_file: the first line of .* is empty"):
        load_settings(write(tmp_path, text), environ={})


def test_cafile_and_attachments_dir_are_relative_to_the_settings_file(tmp_path, monkeypatch):
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    path = write(tmp_path, MINIMAL.replace("[ates]", "cafile = ca.pem\n[database]\n"
                                                     "attachments_dir = files\n[ates]"))
    monkeypatch.chdir(tmp_path.parent)  # anywhere but the settings file's folder
    settings = load_settings(path, environ={})
    assert settings.imap.cafile == str(tmp_path / "ca.pem")
    assert settings.database.attachments_dir == str(tmp_path / "files")


@pytest.mark.parametrize(("host", "change", "warning"), [
    ("imap.example.com", "security = none", "[imap] security = none: the password and every mail"),
    ("192.0.2.7", "verify = false", "[imap] verify = false: the certificate of 192.0.2.7"),
    ("127.0.0.1", "security = none", None),
    ("::1", "verify = false", None),
    ("localhost", "security = none", None),
    ("imap.example.com", "security = starttls", None),
])
def test_a_mailbox_reached_unprotected_over_the_network_is_warned_about(tmp_path, caplog, host,
                                                                        change, warning):
    path = write(tmp_path, MINIMAL.replace("host = 127.0.0.1", f"host = {host}\n{change}"))
    for _start in range(2):  # at every start (and SIGHUP reload), not once
        load_settings(path, environ={})
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == "WARNING" and r.getMessage().startswith("[imap]")]
    if warning is None:
        assert warnings == []
    else:
        assert len(warnings) == 2 and warning in warnings[0]
