"""[database] url = postgresql://…: the schema the same numbered migrations make on SQLite, the
commands on it, clear errors for a server that cannot be reached or does not answer, and a
password that never shows."""

from __future__ import annotations

import socket
import time

from poller.store.database import SCHEMA_VERSION, _version, open_database
from poller.store.schema import MODELS
from testkit.harness import Harness
from testkit.support import alert_mail, poller, run_subprocess, token, write_settings

SECRET = "pg-secret-4711"


def test_both_engines_get_the_same_tables_views_and_schema_version(tmp_path, postgres):
    url = postgres.database()
    try:
        pg = open_database(url)
        assert _version(pg) == SCHEMA_VERSION
        pg_tables = set(pg.get_tables())
        pg_views = {v.name for v in pg.get_views()}
        pg.close()
        lite = open_database(f"sqlite:///{tmp_path}/tickets.db")
        assert _version(lite) == SCHEMA_VERSION
        assert {m._meta.table_name for m in MODELS} <= pg_tables
        assert pg_tables - {"poller_schema"} == set(lite.get_tables())
        assert pg_views == {v.name for v in lite.get_views()}
        lite.close()
        again = open_database(url)  # opening a current database changes nothing
        assert _version(again) == SCHEMA_VERSION
        again.close()
    finally:
        postgres.drop(url)


def test_the_read_only_commands_read_a_postgresql_store(tmp_path, postgres, capsys):
    url = postgres.database()
    try:
        box = Harness(tmp_path, None, url)
        box.mailbox.add(alert_mail(tok=token(CustomerID="Kaseya:100", AlertID="Kaseya:7")))
        box.run()
        capsys.readouterr()
        assert poller(box.settings_path, "tickets") == 0
        assert "Disk full on SRV1" in capsys.readouterr().out
        assert poller(box.settings_path, "messages", "--outcome", "created") == 0
        assert "created" in capsys.readouterr().out
        assert poller(box.settings_path, "status", "--no-mailbox") == 5  # no pass logged yet
    finally:
        postgres.drop(url)


def test_a_server_that_refuses_is_exit_3_naming_host_and_reason_without_password(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_settings(tmp_path, None, database={
        "url": f"postgresql://alerts:{SECRET}@127.0.0.1:{port}/tickets"})
    done = run_subprocess(config, "once")
    assert done.returncode == 3
    assert f"127.0.0.1:{port}/tickets" in done.stderr
    assert "refused" in done.stderr.lower()
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stderr + done.stdout


def test_a_server_that_never_answers_is_exit_3_within_the_connect_timeout(tmp_path):
    with socket.socket() as silent:  # takes the connection, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        config = write_settings(tmp_path, None, database={
            "url": f"postgresql://alerts@127.0.0.1:{port}/tickets?connect_timeout=2"})
        started = time.monotonic()
        done = run_subprocess(config, "tickets", timeout=30)
        took = time.monotonic() - started
    assert done.returncode == 3
    assert f"127.0.0.1:{port}" in done.stderr and "timeout" in done.stderr.lower()
    assert "Traceback" not in done.stderr
    assert took < 10


def test_another_scheme_is_exit_2_naming_the_key(tmp_path):
    config = write_settings(tmp_path, None, database={"url": f"mysql://a:{SECRET}@db/x"})
    done = run_subprocess(config, "once")
    assert done.returncode == 2
    assert "[database] url" in done.stderr
    assert SECRET not in done.stderr


def test_the_password_never_shows(tmp_path, postgres):
    url = postgres.database()
    try:
        secret_file = tmp_path / "db-password"
        secret_file.write_text(f"{SECRET}\n")
        secret_file.chmod(0o600)
        host_part = url.split("://", 1)[1]
        config = write_settings(tmp_path, None, database={
            "url": f"postgresql://postgres:{SECRET}@{host_part.split('@', 1)[1]}",
            "password_file": str(secret_file)})
        runs = [run_subprocess(config, "-vv", "check"),
                run_subprocess(config, "-vv", "status", "--no-mailbox", "--json"),
                run_subprocess(config, "-vv", "once")]
        shown = "".join(done.stdout + done.stderr for done in runs)
        assert "[database]" in shown and "***" in shown
        assert SECRET not in shown
        assert runs[2].returncode == 3  # imap.invalid: the database part worked
        assert "imap.invalid" in runs[2].stderr
    finally:
        postgres.drop(url)


def test_without_the_driver_a_postgresql_url_says_what_to_install(tmp_path):
    config = write_settings(tmp_path, None, database={
        "url": "postgresql://alerts@127.0.0.1:5432/tickets"})
    done = run_subprocess(config, "once", prelude="import sys; sys.modules['psycopg'] = None")
    assert done.returncode == 3
    assert "pip install 'ates-poller[postgres]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_sqlite_pass_does_not_import_the_driver(tmp_path):
    # the database opened, the mailbox unreachable (and not tried again)
    config = write_settings(tmp_path, None, retry={"attempts": "1"})
    done = run_subprocess(config, "once", prelude=(
        "import atexit, sys\n"
        "atexit.register(lambda: print('driver:', 'psycopg' in sys.modules, file=sys.stderr))"))
    assert done.returncode == 3, done.stderr
    assert (tmp_path / "tickets.db").exists()
    assert "driver: False" in done.stderr
