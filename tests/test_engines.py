"""What the store's statements rely on of its two engines (poller.store.engine), the same on
SQLite and PostgreSQL."""

from __future__ import annotations

from poller.store.database import close_database, open_database


def test_an_insert_gives_the_new_rows_id_and_none_when_on_conflict_left_it_out(database_url):
    db = open_database(database_url)
    try:
        with db.atomic():
            add = ("INSERT INTO udf_definition (entity, label, source, kind, created) "
                   "VALUES (?, ?, 'Kaseya', 'alert', '') ON CONFLICT (entity, label) DO NOTHING")
            (first,) = db.insert(add, ("ticket", "Kaseya Alert ID")).fetchall()
            (second,) = db.insert(add, ("device", "Kaseya Alert ID")).fetchall()
            assert db.insert(add, ("ticket", "Kaseya Alert ID")).fetchall() == []
            (third,) = db.insert(add, ("contact", "Kaseya Alert ID")).fetchall()
        rows = db.sql("SELECT id, entity FROM udf_definition ORDER BY id").fetchall()
        assert rows == [(first[0], "ticket"), (second[0], "device"), (third[0], "contact")]
    finally:
        close_database(database_url)
