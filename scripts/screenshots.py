"""README's pictures of the web view: one PNG per page, from the demo's database.

    scripts/demo && .venv/bin/python scripts/screenshots.py [OUT_DIR]

Serves `poller web` over demo/tickets.db ($ATES_DEMO_DIR/tickets.db) on a free port of
127.0.0.1 and photographs the ticket list, one ticket, the charts, the quarantine and the
undelivered events with Debian's Chromium (Playwright), into docs/web/ unless OUT_DIR says
otherwise.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from poller.clock import utc_now  # noqa: E402
from testkit.web import serving  # noqa: E402

PLACE = Path(os.environ.get("ATES_DEMO_DIR") or ROOT / "demo")
CHARTS = 5


def pages(database: Path) -> list[tuple[str, str, bool]]:
    """Return (file name, path, whole page) of each picture."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        (number,) = connection.execute("SELECT number FROM ticket ORDER BY occurrences DESC, "
                                       "id LIMIT 1").fetchone()
    finally:
        connection.close()
    return [("tickets.png", "/?status=any", False), ("ticket.png", f"/tickets/{number}", True),
            ("charts.png", "/charts", True), ("quarantine.png", "/quarantine", False),
            ("events.png", "/events", False)]


def main(out: Path) -> int:
    database = PLACE / "tickets.db"
    if not database.exists():
        print(f"no demo database in {PLACE}: run scripts/demo first", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    with serving(database, now=utc_now()) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        for name, path, whole in pages(database):
            page.goto(base + path)
            if path == "/charts":
                page.locator("canvas[data-drawn]").nth(CHARTS - 1).wait_for()
            page.screenshot(path=out / name, full_page=whole)
            print(f"{out / name}: {path} ({(out / name).stat().st_size // 1024} KiB)")
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "web"))
