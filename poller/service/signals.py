"""Stopping and reloading on signals: SIGTERM and SIGINT stop, SIGHUP reloads settings.ini.

A Python signal handler runs in the main thread between two bytecodes, possibly while that
thread holds a lock the handler would need (an Event's, the scheduler's). So the handlers do
nothing; the interpreter's wakeup fd records which signal came, and a thread acts on it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import TracebackType

from poller.imap.mailbox import Mailbox

logger = logging.getLogger("poller")


class Shutdown:
    """A stop request: an Event the work checks between mails, and a deadline after which the
    live IMAP connection is cut, so that a call blocked on a silent server cannot hold up the
    exit (the store stays consistent: a cut only ever fails an IMAP step)."""

    def __init__(self, grace: float):
        self.event = threading.Event()
        self.grace = grace
        self._live: Mailbox | None = None
        self._lock = threading.Lock()

    def track(self, mailbox: Mailbox | None) -> None:
        """Note the connection the pass is using now (None: no connection)."""
        with self._lock:
            self._live = mailbox

    def request(self, why: str) -> None:
        """Ask the work to stop: once, with one log line."""
        if self.event.is_set():
            return
        logger.info("%s: finishing the mail in hand, then stopping", why)
        self.event.set()
        timer = threading.Timer(self.grace, self._cut)
        timer.daemon = True
        timer.start()

    def _cut(self) -> None:
        with self._lock:
            live = self._live
        if live is not None:
            logger.warning("the pass did not end within %.0fs of the stop request; cutting the "
                           "IMAP connection", self.grace)
            live.abort()


class SignalThread:
    """While entered, turn SIGTERM/SIGINT into ON_STOP(name) and SIGHUP into ON_RELOAD().

    Must be entered from the main thread (the only one that can install handlers).
    """

    def __init__(self, on_stop: Callable[[str], None],
                 on_reload: Callable[[], None] | None = None):
        self.on_stop = on_stop
        self.on_reload = on_reload
        self._signals = [signal.SIGTERM, signal.SIGINT] + ([signal.SIGHUP] if on_reload else [])
        self._old: dict[int, object] = {}
        self._old_fd = -1
        self._pipe: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SignalThread:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        self._pipe = (read_fd, write_fd)
        self._old_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        for signum in self._signals:
            self._old[signum] = signal.signal(signum, _ignore)
        self._thread = threading.Thread(target=self._loop, name="signals", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._old_fd)
        assert self._pipe is not None and self._thread is not None
        read_fd, write_fd = self._pipe
        os.write(write_fd, b"\0")  # not a signal number: tells the thread to end
        self._thread.join(timeout=5)
        os.close(read_fd)
        os.close(write_fd)

    def _loop(self) -> None:
        assert self._pipe is not None
        while True:
            for signum in os.read(self._pipe[0], 64):
                if signum == 0:
                    return
                try:
                    if signum == signal.SIGHUP and self.on_reload is not None:
                        self.on_reload()
                    elif signum in self._signals:
                        self.on_stop(signal.Signals(signum).name)
                except Exception:  # noqa: BLE001 - a failing callback must not end signal handling
                    logger.exception("handling %s failed", signal.Signals(signum).name)


def _ignore(_signum: int, _frame: object) -> None:
    """The Python-level handler: the work happens on the signal thread."""
