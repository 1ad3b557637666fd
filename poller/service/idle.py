"""Waiting for new mail with IMAP IDLE, on a connection of its own, to start a pass at once.

The interval job stays the fallback: when the server offers no IDLE, or while this watcher
is reconnecting, mail is still picked up at the next interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from poller.config import Settings
from poller.errors import MailboxAuthError, MailboxError
from poller.imap.mailbox import Mailbox

logger = logging.getLogger("poller")


class IdleWatcher:
    """A thread that IDLEs on the watched folder and calls ON_NEW_MAIL when mail arrives."""

    def __init__(self, settings: Settings, on_new_mail: Callable[[str], None]):
        self.settings = settings
        self.on_new_mail = on_new_mail
        self.halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="idle", daemon=True)
        self._problem = ""

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Leave IDLE, log out and end the thread (waits up to TIMEOUT seconds)."""
        self.halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        retry = self.settings.retry
        wait = retry.initial_wait
        connected_before = False
        while not self.halt.is_set():
            try:
                if not self._watch(catch_up=connected_before):
                    return
                wait = retry.initial_wait
            except MailboxAuthError as exc:
                # Permanent until someone fixes it: try again once per interval, quietly.
                self._report(f"IDLE paused: {exc}")
                self.halt.wait(self.settings.schedule.interval)
                continue
            except MailboxError as exc:
                self._report(f"IDLE interrupted ({exc}); reconnecting in {wait:.1f}s")
                self.halt.wait(wait)
                wait = min(retry.max_wait, wait * 2)
            connected_before = True

    def _watch(self, catch_up: bool) -> bool:
        """IDLE until halted (True) or until the server turns out to offer no IDLE (False)."""
        folder = self.settings.imap.folder
        with Mailbox(self.settings.imap) as mailbox:
            if not mailbox.has_capability("IDLE"):
                logger.warning("the IMAP server does not offer IDLE; new mail is picked up every "
                               "%d s ([schedule] interval)", self.settings.schedule.interval)
                return False
            mailbox.select(folder, readonly=True)
            if self._problem:
                logger.info("IDLE resumed")
                self._problem = ""
            logger.info("waiting for new mail in %r with IMAP IDLE", folder)
            if catch_up:
                self.on_new_mail("reconnected")  # mail may have come while we were away
            while not self.halt.is_set():
                if mailbox.idle_wait(self.settings.schedule.idle_renew, self.halt):
                    logger.debug("IDLE: new mail in %r", folder)
                    self.on_new_mail("new mail")
                else:
                    logger.debug("IDLE renewed")
        return True

    def _report(self, problem: str) -> None:
        """Log a problem when it changes, not on every attempt."""
        if problem.split(";")[0] != self._problem.split(";")[0]:
            logger.warning("%s", problem)
        self._problem = problem
