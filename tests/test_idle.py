"""The IDLE watcher's reconnects: capped exponential back-off, a refused login once per
interval, the count starting again once IDLE works. Against a scripted connection; IDLE on a
real server is tested in test_service.py."""

from __future__ import annotations

import pytest

from poller.config import load_settings
from poller.errors import MailboxAuthError, MailboxUnavailable
from poller.service.idle import IdleWatcher
from testkit.support import write_settings


class Script:
    """Connections that fail, or reach IDLE, in the order given."""

    def __init__(self, watcher_halts_after: int, *outcomes: Exception | str):
        self.outcomes = list(outcomes)
        self.waits: list[float] = []
        self.halts_after = watcher_halts_after
        self.watcher: IdleWatcher | None = None

    def connect(self, _settings):
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return Connection(self, outcome)

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        if len(self.waits) >= self.halts_after:
            self.watcher.halt.set()


class Connection:
    def __init__(self, script: Script, then: str):
        self.script, self.then = script, then

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def has_capability(self, name):
        return self.then != "no idle"

    def select(self, folder, readonly=False):
        return 1

    def idle_wait(self, seconds, halt):
        raise MailboxUnavailable("the server ended the session: BYE")  # "idle, then dropped"


@pytest.fixture
def settings(tmp_path):
    return load_settings(write_settings(tmp_path, None, retry={"initial_wait": "1",
                                                               "max_wait": "5"},
                                        schedule={"interval": "60"}))


def watch(settings, script: Script) -> list[str]:
    wakes: list[str] = []
    script.watcher = IdleWatcher(settings, wakes.append, connect=script.connect,
                                 sleep=script.sleep)
    script.watcher.run()
    return wakes


def test_failed_connections_back_off_exponentially_up_to_max_wait(settings):
    down = MailboxUnavailable("connection refused")
    script = Script(5, *([down] * 5))
    watch(settings, script)
    assert script.waits == [1, 2, 4, 5, 5]


def test_a_refused_login_is_tried_again_once_per_interval(settings):
    script = Script(2, MailboxAuthError("refused"), MailboxAuthError("refused"))
    watch(settings, script)
    assert script.waits == [60, 60]


def test_the_back_off_starts_again_once_idle_worked_and_a_reconnect_catches_up(settings):
    down = MailboxUnavailable("connection refused")
    script = Script(5, down, down, "idle", down, "idle")
    wakes = watch(settings, script)
    assert script.waits == [1, 2, 1, 2, 1]
    assert wakes == ["reconnected"]  # the second time IDLE was reached


def test_a_server_without_idle_ends_the_watcher(settings):
    script = Script(99, "no idle")
    watch(settings, script)
    assert script.waits == []
