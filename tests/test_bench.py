"""The backlog benchmark keeps working: a tiny run completes and its result check passes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from testkit.support import REPO

# it starts a private Dovecot of its own
pytestmark = pytest.mark.server


def test_backlog_benchmark_runs_and_checks_its_result():
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "backlog.py"), "--mails", "300", "--runs", "1",
         "--warmup", "0", "--store-size", "500"],
        capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "result ok" in run.stdout
    assert "poller once" in run.stdout and "empty pass" in run.stdout
    assert "empty pass / login" in run.stdout


def test_rules_benchmark_runs():
    run = subprocess.run([sys.executable, str(REPO / "bench" / "rules.py"), "--rounds", "1"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "matching 50 rules" in run.stdout and "target" in run.stdout
