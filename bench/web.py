"""Web view benchmark: every page and chart of `poller web` over a large store.

    python bench/web.py [--tickets 1000000] [--runs 5] [--keep DIR]

Builds a store like the backlog bench's (bench/backlog.py --store-size): the directory
through the importer, then --tickets tickets of history over five years with their notes,
UDF values and the log rows of their mails (testkit/prefill.py), so the last 30 days hold
their share of it. Serves the view on a free port of 127.0.0.1 at the end of that history and
times each page and JSON endpoint over HTTP, --runs times after one warm-up request: the
ticket list (unfiltered, by organization, the local organization, by device, by status, an
older page), one ticket, the quarantine, the undelivered events, the charts page and each
chart's JSON. Prints the median and the slowest per address; exits 1 when the slowest of any
is over the target (300 ms).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from testkit.prefill import add_history, build_directory  # noqa: E402
from testkit.web import serving  # noqa: E402

TARGET_MS = 300.0
NOW = datetime(2026, 11, 1, tzinfo=UTC)  # where testkit.prefill's history ends


def addresses(database: Path) -> list[str]:
    """Return the paths to time, with ids and numbers taken from the store."""
    con = sqlite3.connect(database)
    try:
        local = con.execute("SELECT id FROM organization WHERE is_local").fetchone()[0]
        client = con.execute("SELECT id FROM organization WHERE NOT is_local ORDER BY id "
                             "LIMIT 1").fetchone()[0]
        device = con.execute("SELECT name FROM device ORDER BY id LIMIT 1").fetchone()[0]
        middle = con.execute("SELECT (min(id) + max(id)) / 2 FROM ticket").fetchone()[0]
        number = con.execute("SELECT number FROM ticket WHERE id = ?", (middle,)).fetchone()[0]
    finally:
        con.close()
    return ["/", f"/?organization={client}", f"/?organization={local}", f"/?device={device}",
            "/?status=Complete", f"/?status=any&organization={local}&priority=High",  # none match
            f"/?before={middle}", f"/tickets/{number}", "/quarantine", "/events", "/charts",
            "/charts/alerts-per-day.json", "/charts/noisiest.json",
            "/charts/time-to-clear.json", "/charts/storms.json"]


def timed(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()
        assert response.status == 200, (url, response.status)
    return (time.perf_counter() - started) * 1000


def run(tickets: int, runs: int, place: Path) -> int:
    database = place / "tickets.db"
    started = time.perf_counter()
    build_directory(database, place)
    add_history(database, tickets)
    print(f"store: {tickets:,} tickets in {time.perf_counter() - started:.1f} s "
          f"({database.stat().st_size / 2**20:.0f} MiB)", flush=True)
    slow = []
    with serving(database, now=NOW) as base:
        print("| address | median ms | slowest ms |\n|---|---|---|")
        for path in addresses(database):
            timed(base + path)  # warm-up: the pages this path reads come into the cache
            times = [timed(base + path) for _ in range(runs)]
            print(f"| `{path}` | {statistics.median(times):.1f} | {max(times):.1f} |",
                  flush=True)
            if max(times) > TARGET_MS:
                slow.append(path)
    if slow:
        print(f"over {TARGET_MS:.0f} ms: {', '.join(slow)}")
        return 1
    print(f"result ok: every address under {TARGET_MS:.0f} ms")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build the store in DIR and keep it")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return run(args.tickets, args.runs, args.keep)
    with tempfile.TemporaryDirectory() as place:
        return run(args.tickets, args.runs, Path(place))


if __name__ == "__main__":
    raise SystemExit(main())
