"""One pass over the mailbox: select the folder, search it, finish the mailbox steps earlier
passes left, and hand the mail not decided yet to poller.service.handling (loaded only then:
an empty pass imports no rule, recorder or reader), whose moves wait for the end of the pass.

The worker only carries decisions out: what each mail gets is poller.ates's to say, also for
mail that was never read (too large, refused by the server), which comes as a Reading with its
problem.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from poller.clock import Clock, utc_now
from poller.errors import MailboxError, MailboxUnavailable
from poller.service.pass_config import PassConfig
from poller.service.pass_result import PassResult
from poller.service.steps import MailboxSteps, StepsPort
from poller.store.store import Store

if TYPE_CHECKING:
    from poller.service.reader import Reader

logger = logging.getLogger(__name__)


class MailboxPort(StepsPort):
    """What a pass needs of the mailbox: poller.imap.mailbox.Mailbox, or a fake in tests."""

    def select(self, folder: str, readonly: bool = False) -> int: ...
    def search(self, criteria: str) -> list[int]: ...
    def ensure_folder(self, folder: str) -> None: ...
    def larger(self, uids: list[int], size: int) -> set[int]: ...
    def sizes(self, uids: list[int]) -> dict[int, int]: ...
    def fetch(self, uids: list[int]) -> dict[int, bytes]: ...


class Worker:
    """Runs passes with one pass configuration against one mailbox connection and one store.

    reader: the helper that reads mail, when the caller keeps one across passes (`serve`);
    without, each pass with new mail starts its own.
    """

    def __init__(self, config: PassConfig, mailbox: MailboxPort, store: Store,
                 clock: Clock = utc_now, stop: threading.Event | None = None,
                 reader: Reader | None = None):
        self.config = config
        self.mailbox = mailbox
        self.store = store
        self.clock = clock
        self.stop = stop or threading.Event()
        self.reader = reader

    def run_pass(self, result: PassResult | None = None) -> PassResult:
        """Handle every new mail in the folder; raise MailboxError if the server goes away.

        Counts are added to RESULT when given (a pass resumed after reconnecting). When the
        stop event is set, the pass ends after the mail in hand, its chunk committed and
        flagged or moved; the rest is left for the next pass.
        """
        started = time.monotonic()
        result = result if result is not None else PassResult()
        config = self.config
        uidvalidity = self.mailbox.select(config.folder)
        uids = self.mailbox.search(config.search)
        self._create_folders()
        steps = MailboxSteps(self.mailbox, self.store, config.policy.mailbox, self.clock, result)
        steps.finish_pending(config.name, config.folder, uidvalidity, set(uids))
        decided = self.store.decided(config.name, config.folder, uidvalidity, uids)
        new = [uid for uid in uids if uid not in decided]
        if new:
            with self._reading() as reader:
                reader.start()  # it starts while the rest is loaded and the first chunk fetched
                from poller.service.handling import NewMail  # what an empty pass does not need

                mail = NewMail(config, self.mailbox, self.store, self.clock, self.stop, steps,
                               result)
                mail.handle(uidvalidity, new, reader)
            steps.carry_out(mail.moves)
        result.seconds = time.monotonic() - started
        return result

    def _create_folders(self) -> None:
        """Create the folders mail may be moved to, so that a folder the server refuses shows
        at the start of every pass (the steps that need it are left for the next pass)."""
        for folder in self.config.target_folders:
            try:
                self.mailbox.ensure_folder(folder)
            except MailboxUnavailable:
                raise
            except MailboxError as exc:
                logger.error("%s", exc)

    @contextmanager
    def _reading(self) -> Iterator[Reader]:
        if self.reader is None:
            # only a pass with new mail starts a helper (an empty pass does not load it)
            from poller.service.reader import Reader

            with Reader() as reader:
                yield reader
        else:
            try:
                yield self.reader
            finally:
                self.reader.settle()
