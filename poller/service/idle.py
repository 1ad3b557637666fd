"""Waiting for new mail with IMAP IDLE, on a connection of its own, to start a pass at once.

The interval job stays the fallback: when the server offers no IDLE, or while this watcher
is reconnecting, mail is still picked up at the next interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception_type

from poller.backoff import exponential
from poller.config import ImapSettings, Settings
from poller.errors import MailboxAuthError, MailboxError
from poller.imap.mailbox import Mailbox

logger = logging.getLogger("poller")


class IdleWatcher:
    """A thread that IDLEs on the watched folder and calls ON_NEW_MAIL when mail arrives."""

    def __init__(self, settings: Settings, on_new_mail: Callable[[str], None], *,
                 connect: Callable[[ImapSettings], Mailbox] = Mailbox,
                 sleep: Callable[[float], object] | None = None):
        self.settings = settings
        self.on_new_mail = on_new_mail
        self.connect = connect
        self.halt = threading.Event()
        self.sleep = sleep or self.halt.wait
        self._thread = threading.Thread(target=self._run, name="idle", daemon=True)
        self._problem = ""
        self._failures = 0  # failed attempts since IDLE last worked
        self._connected_once = False

    def start(self) -> None:
        self._thread.start()

    def run(self) -> None:
        """Watch in this thread until halted (start() runs this in a thread of its own)."""
        self._run()

    def stop(self, timeout: float = 5.0) -> None:
        """Leave IDLE, log out and end the thread (waits up to TIMEOUT seconds)."""
        self.halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        """Watch until halted, reconnecting with capped exponential back-off (a refused login:
        once per interval, quietly) until the server turns out to offer no IDLE."""
        retrying = Retrying(
            retry=retry_if_exception_type(MailboxError),
            stop=lambda _state: self.halt.is_set(),
            wait=self._back_off,
            sleep=self.sleep,
            before_sleep=self._report,
        )
        try:
            retrying(self._watch)
        except RetryError:
            pass  # halted while waiting to reconnect

    def _back_off(self, state: RetryCallState) -> float:
        """Return the seconds to wait after a failed attempt."""
        self._failures += 1
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, MailboxAuthError):
            return float(self.settings.schedule.interval)  # permanent until someone fixes it
        retry = self.settings.retry
        return exponential(self._failures, retry.initial_wait, retry.max_wait)

    def _watch(self) -> None:
        """IDLE until halted, or until the server turns out to offer no IDLE; raise
        MailboxError when the connection fails."""
        if self.halt.is_set():
            return  # stopped while waiting to reconnect
        folder = self.settings.imap.folder
        with self.connect(self.settings.imap) as mailbox:
            if not mailbox.has_capability("IDLE"):
                logger.warning("the IMAP server does not offer IDLE; new mail is picked up every "
                               "%d s ([schedule] interval)", self.settings.schedule.interval)
                return
            mailbox.select(folder, readonly=True)
            self._failures = 0
            if self._problem:
                logger.info("IDLE resumed")
                self._problem = ""
            logger.info("waiting for new mail in %r with IMAP IDLE", folder)
            if self._connected_once:
                self.on_new_mail("reconnected")  # mail may have come while we were away
            self._connected_once = True
            while not self.halt.is_set():
                if mailbox.idle_wait(self.settings.schedule.idle_renew, self.halt):
                    logger.debug("IDLE: new mail in %r", folder)
                    self.on_new_mail("new mail")
                else:
                    logger.debug("IDLE renewed")

    def _report(self, state: RetryCallState) -> None:
        """Log a problem when it changes, not on every attempt."""
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        if isinstance(error, MailboxAuthError):
            problem = f"IDLE paused: {error}"
        else:
            problem = f"IDLE interrupted ({error}); reconnecting in {wait:.1f}s"
        if problem.split(";")[0] != self._problem.split(";")[0]:
            logger.warning("%s", problem)
        self._problem = problem
