"""`poller copy-database TARGET_URL`: the configured store into an empty database."""

from __future__ import annotations

import argparse
import sys

from poller.cli.exits import EXIT_CONFIG, EXIT_OK
from poller.config import Settings
from poller.paths import POSTGRES_SCHEMES, SQLITE_PREFIX, masked_database_url
from poller.store.copy import TargetNotEmpty, copy_database


def copy_database_command(settings: Settings, args: argparse.Namespace) -> int:
    target = args.target
    if not target.startswith((SQLITE_PREFIX, *POSTGRES_SCHEMES)):
        print(f"poller: copy-database: {masked_database_url(target)!r} is neither an SQLite "
              "nor a PostgreSQL database URL", file=sys.stderr)
        return EXIT_CONFIG
    try:
        copied = copy_database(settings.database.url, settings.database.password, target)
    except TargetNotEmpty as exc:
        print(f"poller: copy-database: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for table, (source, target_rows) in copied.counts.items():
        print(f"{table:<20} {source:>9} rows copied, {target_rows:>9} in the target")
    print(f"copied {sum(s for s, _ in copied.counts.values())} rows from "
          f"{masked_database_url(settings.database.url)} to {masked_database_url(target)}; "
          "the row counts match")
    return EXIT_OK
