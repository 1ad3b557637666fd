"""The store: the schema (SQLite or PostgreSQL, poller.store.engine), opening (and upgrading) the
database, the directory look-ups the rules ask for (one by one, or a chunk's read ahead),
recording a decision (ticket numbers, notes and attachments), the processed-mail and pass logs,
the CSV importer, the read-only queries of the commands, and who serves a mailbox.

May import: poller.ates, poller.mail, poller.config, poller.errors, peewee and psycopg (the
one layer that does; import-linter checks it; see pyproject.toml).
"""

import sys

# peewee imports psycopg (and psycopg2) when it is importable, which would cost every SQLite
# pass a tenth of a second: it is kept from them, and poller.store.engine loads psycopg when
# a postgresql:// URL is opened.
if "peewee" not in sys.modules:
    _kept = [name for name in ("psycopg", "psycopg2") if name not in sys.modules]
    sys.modules.update(dict.fromkeys(_kept))
    try:
        import peewee  # noqa: F401
    finally:
        for _name in _kept:
            if sys.modules.get(_name, 0) is None:
                del sys.modules[_name]
