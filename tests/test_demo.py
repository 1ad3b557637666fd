"""scripts/demo as a newcomer runs it: what it shows, what it keeps, and the --serve variant with
`scripts/demo send`. Each run gets a demo folder of its own ($ATES_DEMO_DIR)."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.request

import pytest

from testkit.serving import wait_until
from testkit.support import REPO

# it starts a private Dovecot of its own
pytestmark = pytest.mark.server

DEMO = REPO / "scripts" / "demo.py"
MAILS = REPO / "fixtures" / "demo"


def demo_env(place) -> dict[str, str]:
    return dict(os.environ, ATES_DEMO_DIR=str(place), PYTHONUNBUFFERED="1")


def open_tickets(place) -> list[tuple]:
    connection = sqlite3.connect(place / "tickets.db")
    try:
        return connection.execute("SELECT number, organization FROM open_tickets").fetchall()
    finally:
        connection.close()


def ends_with_open_tickets(lines: list[str], place) -> int:
    """Check the output ends with the sqlite3 line and the open tickets, then the `poller web`
    line; return how many open tickets."""
    (web,) = [n for n, line in enumerate(lines) if line.startswith("$ ") and " web " in line]
    assert web == len(lines) - 2 and lines[web + 1].strip().startswith("then open http://")
    lines = lines[:web - 2]
    (command,) = [n for n, line in enumerate(lines) if line.startswith("$ sqlite3 ")]
    assert "FROM open_tickets" in lines[command] and str(place / "tickets.db") in lines[command]
    assert lines[command + 1].split() == ["number", "organization", "device", "occurrences",
                                          "udfs"]
    shown = [line.split()[0] for line in lines[command + 3:]]
    assert shown == [number for number, _ in open_tickets(place)]
    return len(shown)


def test_the_demo_shows_tickets_events_and_ends_with_the_sqlite3_line(tmp_path):
    done = subprocess.run([sys.executable, str(DEMO)], env=demo_env(tmp_path), cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count("webhook receiver: created") == 3 and "signature WRONG" not in out
    assert "webhook receiver: completed" in out and "by demo, signature ok" in out
    assert ends_with_open_tickets(out.rstrip().splitlines(), tmp_path) == 1
    assert (tmp_path / "settings.ini").stat().st_mode & 0o077 == 0
    shows_the_tickets_in_the_web_view(out.rstrip().splitlines()[-2], tmp_path)


def shows_the_tickets_in_the_web_view(line: str, place) -> None:
    """Run the demo's `poller web` line (on a free port) and find its open tickets there."""
    words = shlex.split(line[2:])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    words[words.index("--port") + 1] = str(port)
    server = subprocess.Popen(words, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    pages: list[str] = []

    def answered() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                pages.append(answer.read().decode())
        except OSError:
            return server.poll() is not None  # it ended: stop waiting
        return True

    try:
        wait_until(answered, timeout=30)
        assert pages, server.communicate(timeout=5)
        for number, organization in open_tickets(place):
            assert f">{number}</a>" in pages[0] and organization in pages[0]
    finally:
        server.terminate()
        server.wait(10)


def test_the_serving_demo_takes_a_mail_sent_in_until_ctrl_c(tmp_path):
    child = subprocess.Popen([sys.executable, str(DEMO), "--serve"], env=demo_env(tmp_path),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             stdin=subprocess.DEVNULL)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)
    reader.start()

    def seen(text: str) -> bool:
        return any(text in line for line in list(lines))

    try:
        wait_until(lambda: seen("Ctrl-C ends the demo") and seen("webhook receiver: created "
                                                                 "T") and seen("pass done"),
                   60, lambda: "".join(lines))
        before = len(open_tickets(tmp_path))
        for name in ("03-agent-offline-ct-dc01.eml", "04-resolved-agent-offline-ct-dc01.eml"):
            sent = subprocess.run([sys.executable, str(DEMO), "send", str(MAILS / name)],
                                  env=demo_env(tmp_path), capture_output=True, text=True,
                                  timeout=30, check=False)
            assert sent.returncode == 0, sent.stderr
            wanted = "created" if name.startswith("03") else "completed"
            wait_until(lambda w=wanted: sum(f"webhook receiver: {w} " in line
                                            for line in list(lines)) >= 2, 30,
                       lambda: "".join(lines))
        assert len(open_tickets(tmp_path)) == before
        child.send_signal(signal.SIGINT)
        assert child.wait(30) == 0
        reader.join(5)
        assert seen("stopped")
        assert ends_with_open_tickets([line.rstrip("\n") for line in lines], tmp_path) == before
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
