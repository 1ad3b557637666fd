"""The store: the SQLite schema, opening (and upgrading) the database, the directory look-ups
the rules ask for, recording a decision, the processed-mail and pass logs, the CSV importer,
and the read-only queries of the commands.

May import: poller.ates, poller.mail, poller.config, poller.errors and peewee (import-linter
checks it; see pyproject.toml).
"""
