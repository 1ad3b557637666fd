"""The web view over HTTP: the numbers it shows are the store's, it only reads, it answers GET
and HEAD only, it escapes mail text, and it lets nobody in without the password when it has
one. (tests/test_web_browser.py looks at the same pages in a browser.)"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import peewee
import pytest

from poller.cli import main
from poller.store import browse
from poller.store.readonly import open_read_only
from poller.web.app import CSP, STATIC, Access
from testkit.web import CLIENTS, HOSTILE, NOW, STORM, serving, web_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return web_store(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def url(store):
    with serving(store.database) as base:
        yield base


def get(url: str, method: str = "GET", headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def chart(url: str, name: str) -> dict:
    status, headers, body = get(f"{url}/charts/{name}.json")
    assert status == 200 and headers["content-type"] == "application/json"
    return json.loads(body)


def sql(store, query: str, *params) -> list[tuple]:
    with sqlite3.connect(store.database) as connection:
        found = connection.execute(query, params).fetchall()
    connection.close()
    return found


ALERT = "outcome IN ('created', 'appended', 'completed')"


def test_alerts_per_day_are_the_stores_counts_by_organization(store, url):
    data = chart(url, "alerts-per-day")
    assert len(data["days"]) == 30 and data["days"][-1] == NOW.date().isoformat()
    counted = {(day, org): n for day, org, n in sql(store, f"""
        SELECT substr(m.created, 1, 10), o.name, count(*) FROM processed_message m
        JOIN ticket t ON t.id = m.ticket_id JOIN organization o ON o.id = t.organization_id
        WHERE {ALERT} AND m.created >= ? GROUP BY 1, 2""", data["days"][0])}
    shown = {(day, s["organization"]): n for s in data["series"]
             for day, n in zip(data["days"], s["alerts"], strict=True) if n}
    assert shown == counted
    assert sum(data["total"]) == sum(counted.values()) == 4 + 1 + 2 + 1 + 1 + STORM + 2
    # the alert 40 days ago is not in the chart
    assert "2026-10-22" not in data["days"]


def test_the_noisiest_devices_and_organizations_of_the_last_7_days(url):
    data = chart(url, "noisiest")
    assert data["organizations"] == [{"name": "Client Three", "alerts": STORM + 2},
                                     {"name": "Client One", "alerts": 5},
                                     {"name": "Client Two", "alerts": 4}]
    assert data["devices"][0] == {"name": "WS3 (Client Three)", "alerts": STORM + 2}


def test_time_to_clear_is_the_median_and_spread_per_organization(url):
    data = chart(url, "time-to-clear")
    # CPU high: created 5 days 3 hours ago, cleared 5 days ago; Service stopped: 6 hours
    assert [(r["organization"], r["tickets"], r["median"], r["q1"], r["q3"])
            for r in data["organizations"]] == [("Client One", 1, 3.0, 3.0, 3.0),
                                                ("Client Two", 1, 6.0, 6.0, 6.0)]


def test_a_storm_is_more_than_the_threshold_in_a_10_minute_slot(store, url):
    data = chart(url, "storms")
    assert len(data["slots"]) == 144 and data["threshold"] == STORM
    assert data["storms"] == [{"slot": "2026-12-01T12:00Z", "alerts": STORM + 2}]
    assert data["under_way"] is True
    assert sum(data["alerts"]) == sql(store, f"SELECT count(*) FROM processed_message WHERE "
                                             f"{ALERT} AND created >= '2026-11-30T12:10'")[0][0]
    status, _, body = get(f"{url}/quarantine")
    assert status == 200 and 'id="storm"' in body  # the banner on every page


def test_each_chart_has_its_numbers_in_a_table_beside_it(url):
    _, _, page = get(f"{url}/charts")
    per_day = chart(url, "alerts-per-day")
    for series in per_day["series"]:
        assert f'<th class="n">{series["organization"]}</th>' in page
    assert '<td>WS3 (Client Three)</td><td class="n">12</td>' in page
    assert '<td class="n">6.0</td>' in page  # a median
    assert '<tr class="storm-row"><td>2026-12-01T12:00Z</td><td class="n">12</td></tr>' in page


def test_open_tickets_newest_first_filtered_and_paged(store, url):
    _, _, page = get(f"{url}/")
    numbers = [n for (n,) in sql(store, "SELECT number FROM ticket WHERE status != 'Complete' "
                                        "ORDER BY id DESC")]
    positions = [page.index(f">{n}</a>") for n in numbers]
    assert positions == sorted(positions)  # newest first, all on one page
    (two,) = sql(store, "SELECT id FROM organization WHERE name = 'Client Two'")[0]
    _, _, narrowed = get(f"{url}/?organization={two}")
    assert narrowed.count('class="ticket"') == 2 and "Backup failed" in narrowed  # B1, B2
    assert "Service stopped" not in narrowed and "Ping lost" not in narrowed
    _, _, by_device = get(f"{url}/?device=WS3&status=any")
    assert by_device.count('class="ticket"') == STORM + 2 + 1  # and the old one
    db = open_read_only(f"sqlite:///{store.database}")
    want = browse.TicketFilter(status=browse.ANY)
    first = browse.ticket_page(db, want, size=5)
    second = browse.ticket_page(db, want, before=first.older, size=5)
    ids = [r["id"] for r in first.rows + second.rows]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 10
    assert first.count == len(sql(store, "SELECT id FROM ticket")) and not first.capped


def test_a_ticket_shows_all_its_parts(store, url):
    (number,) = sql(store, "SELECT number FROM ticket WHERE title = 'Disk full' AND "
                           "occurrences = 2")[0]
    status, _, page = get(f"{url}/tickets/{number}")
    assert status == 200
    assert "Client One" in page and "SRV1" in page and "Kaseya Alert ID" in page
    assert page.count("<td>created</td><td>Disk full</td>") == 1  # the mails, in order
    assert page.index("<td>created</td><td>Disk full") < page.index("<td>appended</td><td>Disk")
    assert "Webhook events (2)" in page and "pending" in page
    (hostile,) = sql(store, "SELECT number FROM ticket WHERE title LIKE '<img%'")[0]
    _, _, page = get(f"{url}/tickets/{hostile}")
    assert "report.txt" in page and "1,234" in page
    assert get(f"{url}/tickets/T20990101.0001")[0] == 404


def test_mail_text_is_escaped(store, url):
    for path in ("/", "/?status=any",
                 f"/tickets/{sql(store, 'SELECT number FROM ticket WHERE title LIKE ?', '<img%')[0][0]}"):
        _, _, page = get(url + path)
        assert "&lt;img src=x onerror=" in page
        assert "<img" not in page and "<b>full" not in page
    assert HOSTILE.startswith("<img")


def test_quarantine_shows_the_requeue_command_to_run(store, url):
    (message_id,) = sql(store, "SELECT message_id FROM processed_message "
                               "WHERE outcome = 'quarantined'")[0]
    _, _, page = get(f"{url}/quarantine")
    assert "the token&#39;s PW does not match" in page
    command = f"poller --config /etc/ates-poller/settings.ini requeue '{message_id}'"
    assert f"<code>{html.escape(command).replace('&#x27;', '&#39;')}</code>" in page


def test_undelivered_events_are_listed(store, url):
    pending = sql(store, "SELECT delivery_id FROM outbox WHERE status = 'pending'")
    _, _, page = get(f"{url}/events")
    assert len(pending) > 20 and all(d in page for (d,) in pending[-20:])
    assert "s3cret" not in page


def test_only_get_and_head_everything_else_405(url):
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        status, headers, _ = get(f"{url}/", method)
        assert status == 405 and headers["allow"] == "GET, HEAD", method
    status, _, body = get(f"{url}/charts", "HEAD")
    assert status == 200 and body == ""
    assert get(f"{url}/?queue={'x' * 3000}")[0] == 414
    assert get(f"{url}/?before=abc")[0] == 400


def test_every_response_allows_only_its_own_origin(url):
    for path in ("/", "/charts", "/charts/storms.json", "/static/chart.umd.min.js", "/nope"):
        _, headers, _ = get(url + path)
        assert headers["content-security-policy"] == CSP, path
        assert headers["x-content-type-options"] == "nosniff"
    assert "'unsafe-inline'" not in CSP and "default-src 'self'" in CSP


def test_the_vendored_chart_library_is_the_recorded_one():
    record = json.loads((STATIC / "chart.js.json").read_text())
    data = (STATIC / record["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == record["sha256"]
    assert f"Chart.js v{record['version']}" in data[:200].decode()
    assert "MIT License" in (STATIC / "chart.js-LICENSE.md").read_text()


def test_with_a_password_nobody_gets_in_without_it(store):
    with serving(store.database, Access(user="tech", password="pässword")) as base:
        assert get(f"{base}/")[0] == 401
        assert get(f"{base}/charts/storms.json")[0] == 401
        for user, password in (("tech", "wrong"), ("other", "pässword"), ("tech", "")):
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            assert get(f"{base}/", headers={"Authorization": f"Basic {token}"})[0] == 401
        token = base64.b64encode("tech:pässword".encode()).decode()
        assert get(f"{base}/", headers={"Authorization": f"Basic {token}"})[0] == 200
        assert get(f"{base}/", headers={"Authorization": "Basic !!!"})[0] == 401


def test_the_view_cannot_write_and_leaves_the_database_as_it_was(store, url):
    before = store.database.read_bytes()
    db = open_read_only(f"sqlite:///{store.database}")
    with pytest.raises(peewee.OperationalError, match="readonly"):
        db.execute_sql("DELETE FROM ticket")
    db.close()
    for path in ("/", "/charts", "/quarantine", "/events"):
        assert get(url + path)[0] == 200
    assert store.database.read_bytes() == before


def test_beyond_loopback_without_a_password_exits_2_before_binding(store, capsys):
    assert main(["--config", str(store.config), "web", "--host", "0.0.0.0"]) == 2
    assert "needs [web] password_file" in capsys.readouterr().err


def test_beyond_loopback_without_tls_is_warned_about(store, tmp_path, caplog):
    from poller.config import load_settings
    from poller.web.server import check_address

    secret = tmp_path / "web-password"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    text = store.config.read_text().replace("[web]\n", f"[web]\npassword_file = {secret}\n")
    config = tmp_path / "settings.ini"
    config.write_text(text)
    config.chmod(0o600)
    settings = load_settings(config)
    assert settings.web.password == "pw" and "pw" not in repr(settings.web)
    check_address(settings, "127.0.0.1")
    assert "without TLS" not in caplog.text
    check_address(settings, "192.0.2.1")
    assert "without TLS" in caplog.text


def test_clients_are_the_stores(store):
    assert sorted(n for (n,) in sql(store, "SELECT name FROM organization WHERE NOT is_local")) \
        == sorted(c[0] for c in CLIENTS)


def test_a_missing_database_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="does not exist"):
        open_read_only(f"sqlite:///{tmp_path}/none.db")
    assert not Path(tmp_path / "none.db").exists()


def test_a_read_that_takes_too_long_is_stopped_with_a_clear_error(store):
    from poller.errors import StoreError
    from poller.store.readonly import read_within

    db = open_read_only(f"sqlite:///{store.database}")
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n"
    with pytest.raises(StoreError, match="longer than 0.2 s"), read_within(db, 0.2):
        db.execute_sql(endless).fetchall()
    with read_within(db, 0.2):  # the next reading has its own time
        assert db.execute_sql("SELECT count(*) FROM ticket").fetchone()[0] > 0
    db.close()


def test_filters_without_an_index_look_at_a_bounded_window(store, url, monkeypatch):
    db = open_read_only(f"sqlite:///{store.database}")
    (three,) = sql(store, "SELECT id FROM organization WHERE name = 'Client Three'")[0]
    everything = browse.ticket_page(db, browse.TicketFilter(status=browse.ANY,
                                                            organization=three))
    want = browse.TicketFilter(status="New", organization=three, priority="Medium")
    assert browse.windowed(want) and not browse.windowed(browse.TicketFilter(organization=1))
    assert browse.ticket_page(db, want).count == STORM + 2 + 1  # all: within the window
    monkeypatch.setattr(browse, "WINDOW", 3)
    newest = [r["id"] for r in everything.rows[:3]]
    assert [r["id"] for r in browse.ticket_page(db, want).rows] == newest
    db.close()
    _, _, page = get(f"{url}/?organization={three}&priority=Medium")
    assert 'id="window"' in page
    _, _, page = get(f"{url}/?organization={three}")
    assert 'id="window"' not in page
