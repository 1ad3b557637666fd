"""The web view's benchmark keeps working: a tiny run times every address and checks it."""

from __future__ import annotations

import subprocess
import sys

from testkit.support import REPO


def test_web_benchmark_runs_every_address():
    run = subprocess.run([sys.executable, str(REPO / "bench" / "web.py"), "--tickets", "500",
                          "--runs", "1"], capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "store: 500 tickets" in run.stdout
    for path in ("`/`", "/?organization=0`", "/tickets/T", "`/quarantine`", "`/events`",
                 "`/charts`", "/charts/storms.json`", "/charts/time-to-clear.json`"):
        assert path in run.stdout, path
    assert "result ok: every address under 300 ms" in run.stdout
