"""[schedule], [retry], [metrics] and [status]: defaults, derived values, precise errors."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from poller.config import load_settings
from poller.errors import ConfigError

MINIMAL = """
[imap]
host = 127.0.0.1
username = alerts
password = imap-secret
[ates]
password = ates-secret
"""


def load(tmp_path: Path, extra: str = "", environ: dict[str, str] | None = None):
    path = tmp_path / "settings.ini"
    path.write_text(MINIMAL + extra, encoding="utf-8")
    return load_settings(path, environ=environ or {})


def test_defaults_and_the_lock_file_next_to_the_database(tmp_path):
    settings = load(tmp_path)
    assert (settings.schedule.interval, settings.schedule.idle) == (300, False)
    assert settings.schedule.idle_renew == 600 and settings.schedule.lock_wait == 10
    assert re.fullmatch(re.escape(f"{tmp_path}/tickets.db.alerts@127.0.0.1_993_INBOX-") +
                        "[0-9a-f]{16}\\.lock", settings.schedule.lock_file)
    assert (settings.retry.attempts, settings.retry.initial_wait, settings.retry.max_wait) == (
        5, 1.0, 60.0)
    assert settings.metrics.textfile is None
    assert settings.status.max_age == 900  # three intervals


def test_status_max_age_follows_the_interval_unless_set(tmp_path):
    assert load(tmp_path, "[schedule]\ninterval = 60\n").status.max_age == 180
    assert load(tmp_path, "[schedule]\ninterval = 60\n[status]\nmax_age = 50\n"
                ).status.max_age == 50


def test_relative_paths_are_relative_to_the_settings_file(tmp_path):
    settings = load(tmp_path, "[schedule]\nlock_file = run/poller.lock\n"
                              "[metrics]\ntextfile = prom/poller.prom\n")
    assert settings.schedule.lock_file == str(tmp_path / "run/poller.lock")
    assert settings.metrics.textfile == str(tmp_path / "prom/poller.prom")


def test_mailboxes_sharing_a_database_get_a_lock_file_each(tmp_path):
    first = load(tmp_path)
    other_folder = load(tmp_path, environ={"POLLER_IMAP_FOLDER": "INBOX/Alerts"})
    other_user = load(tmp_path, environ={"POLLER_IMAP_USERNAME": "rmm"})
    same = load(tmp_path, environ={"POLLER_IMAP_NAME": "another name, the same mailbox"})
    locks = {s.schedule.lock_file for s in (first, other_folder, other_user)}
    assert len(locks) == 3 and all(Path(lock).parent == tmp_path for lock in locks)
    assert same.schedule.lock_file == first.schedule.lock_file


def test_mailbox_keys_that_read_alike_once_cleaned_or_cut_get_a_lock_file_each(tmp_path):
    """A space and a slash clean to the same character, and keys alike for 100 characters were
    cut to the same name: each pair shared a pass lock."""
    pairs = [({"POLLER_IMAP_FOLDER": "Alerts/Disk"}, {"POLLER_IMAP_FOLDER": "Alerts Disk"}),
             ({"POLLER_IMAP_FOLDER": "A" * 120 + "one"}, {"POLLER_IMAP_FOLDER": "A" * 120 + "two"})]
    for one, other in pairs:
        first, second = load(tmp_path, environ=one), load(tmp_path, environ=other)
        assert first.schedule.lock_file != second.schedule.lock_file
        assert len(Path(first.schedule.lock_file).name) < 200


def test_in_memory_database_gets_a_lock_file_per_mailbox_in_the_temp_dir(tmp_path):
    first = load(tmp_path, "[database]\nurl = sqlite:///:memory:\n")
    other = load(tmp_path, "[database]\nurl = sqlite:///:memory:\n",
                 environ={"POLLER_IMAP_FOLDER": "Alerts"})
    assert Path(first.schedule.lock_file).parent == Path(tempfile.gettempdir())
    assert first.schedule.lock_file != other.schedule.lock_file


def test_environment_overrides_reach_the_new_sections(tmp_path):
    settings = load(tmp_path, environ={"POLLER_SCHEDULE_IDLE": "yes",
                                       "POLLER_METRICS_TEXTFILE": "/var/lib/x/poller.prom"})
    assert settings.schedule.idle is True
    assert settings.metrics.textfile == "/var/lib/x/poller.prom"


@pytest.mark.parametrize(("extra", "message"), [
    ("[schedule]\ninterval = 0\n", "[schedule] interval: must be at least 1"),
    ("[schedule]\nidle = sometimes\n", "[schedule] idle: expected true or false"),
    ("[schedule]\nidle_renew = 1800\n", "[schedule] idle_renew: at most 1740 seconds"),
    ("[schedule]\nlock_wait = -1\n", "[schedule] lock_wait: must be zero or more"),
    ("[retry]\nattempts = 0\n", "[retry] attempts: must be at least 1"),
    ("[retry]\ninitial_wait = 10\nmax_wait = 5\n", "[retry] max_wait: must be at least"),
    ("[metrics]\ntextfile = /tmp/poller.txt\n", "[metrics] textfile: '/tmp/poller.txt' must end"),
    ("[status]\nmax_age = x\n", "[status] max_age: expected a whole number"),
])
def test_bad_values_name_section_and_key(tmp_path, extra, message):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, extra)
    assert message in str(error.value)


def test_secrets_from_systemd_credentials(tmp_path, monkeypatch):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "imap-password").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    path = tmp_path / "settings.ini"
    path.write_text(MINIMAL.replace("password = imap-secret\n", ""), encoding="utf-8")
    settings = load_settings(path, environ={
        "POLLER_IMAP_PASSWORD_FILE": "${CREDENTIALS_DIRECTORY}/imap-password"})
    assert settings.imap.password == "from-credential"
