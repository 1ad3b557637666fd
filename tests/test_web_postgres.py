"""The web view's database on PostgreSQL: sessions whose transactions the server refuses to let
write, a reading stopped after its time, and clear errors for a database without a store.
(The pages themselves are tested on both engines in tests/test_web_browser.py.)"""

from __future__ import annotations

import pytest

from poller.errors import StoreError
from poller.store.database import close_database, open_database
from poller.store.readonly import open_read_only, read_within


@pytest.fixture
def store_url(postgres):
    url = postgres.database()
    open_database(url).close()  # the store, as a pass makes it
    close_database(url)
    try:
        yield url
    finally:
        postgres.drop(url)


def test_the_view_cannot_write_a_postgresql_store(store_url):
    db = open_read_only(store_url)
    try:
        with pytest.raises(StoreError, match="read-only transaction"):
            db.sql("DELETE FROM ticket")
        with pytest.raises(StoreError, match="read-only transaction"), read_within(db, 5):
            db.sql("INSERT INTO ticket_sequence (day, last) VALUES ('20261201', 1)")
        with read_within(db, 5):
            assert db.sql("SELECT count(*) FROM ticket_sequence").fetchone()[0] == 0
    finally:
        db.close()


def test_a_reading_that_takes_too_long_on_postgresql_is_stopped(store_url):
    db = open_read_only(store_url)
    try:
        with pytest.raises(StoreError, match="longer than 0.2 s"), read_within(db, 0.2):
            db.sql("SELECT pg_sleep(5)").fetchall()
        with read_within(db, 0.2):  # the next reading has its own time
            assert db.sql("SELECT count(*) FROM organization").fetchone()[0] == 0
    finally:
        db.close()


def test_a_postgresql_database_without_a_store_is_a_clear_error(postgres):
    url = postgres.database()
    try:
        with pytest.raises(StoreError, match="no ates-poller tables yet"):
            open_read_only(url)
    finally:
        postgres.drop(url)
