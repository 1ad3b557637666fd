"""Fetching sizes and mail so that a mail the server will not hand over costs only itself.

* A FETCH answered NO is split in halves down to the mails the server refuses
  (poller.batches.refused_items); those are noted with its words (and quarantined), the rest
  is fetched.
* A FETCH that loses the connection is retried by the pass on a new connection (passes.py).
  Dovecot, for one, ends the session when it cannot read a message file, so the UIDs of that
  FETCH are then fetched one at a time, and a mail whose FETCH alone lost the connection
  LOSSES times is noted as refused instead of stopping every pass. The count lives in the
  pass (PassResult.lost), so it takes [retry] attempts of 4 or more (default 5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from poller.batches import refused_items
from poller.errors import MailboxError, MailboxUnavailable

T = TypeVar("T")

# Connections lost fetching one mail alone before it is taken as one the server cannot return.
LOSSES = 2


class Fetching(Protocol):
    def larger(self, uids: list[int], size: int) -> set[int]: ...
    def sizes(self, uids: list[int]) -> dict[int, int]: ...
    def fetch(self, uids: list[int]) -> dict[int, bytes]: ...


class Fetcher:
    """Fetches for one pass attempt; refused holds (uid → reason) of mail the server refused,
    until the worker takes them."""

    def __init__(self, mailbox: Fetching, lost: dict[int, list[str]]):
        self.mailbox = mailbox
        self.lost = lost
        self.refused: dict[int, str] = {}

    def sizes(self, uids: list[int], bound: int) -> dict[int, int]:
        """Return the size of each UID (lowest first), as far as the pass needs it: BOUND for
        mail no larger (a SEARCH finds the larger ones: FETCHing 10,000 sizes took a backlog's
        worker a twentieth of its time), RFC822.SIZE for the rest that are still there and not
        refused."""
        try:
            larger = self.mailbox.larger(uids, bound) if uids else set()
        except MailboxUnavailable:
            raise
        except MailboxError:  # a server that cannot SEARCH so: every size is fetched
            return self._refusing(self.mailbox.sizes, uids)
        sizes = dict.fromkeys((uid for uid in uids if uid not in larger), bound)
        sizes.update(self._refusing(self.mailbox.sizes, [uid for uid in uids if uid in larger]))
        return sizes

    def fetch(self, uids: list[int]) -> dict[int, bytes]:
        """Return the raw mail of each UID still there and not refused."""
        if not any(uid in self.lost for uid in uids):
            try:
                return self._refusing(self.mailbox.fetch, uids)
            except MailboxUnavailable:
                for uid in uids:
                    self.lost.setdefault(uid, [])
                raise
        raws: dict[int, bytes] = {}
        for uid in uids:
            errors = self.lost.get(uid, [])
            if len(errors) >= LOSSES:
                self.refused[uid] = (f"the connection was lost each of the {len(errors)} times "
                                     f"it was fetched alone (last: {errors[-1]})")
                continue
            try:
                raws.update(self._refusing(self.mailbox.fetch, [uid]))
            except MailboxUnavailable as exc:
                self.lost.setdefault(uid, []).append(str(exc))
                raise
        return raws

    def _refusing(self, fetch: Callable[[list[int]], dict[int, T]],
                  uids: list[int]) -> dict[int, T]:
        """Return what FETCH gives for UIDS; the UIDs the server refuses alone go to refused."""
        found: dict[int, T] = {}

        def attempt(part: list[int]) -> str:
            try:
                found.update(fetch(part))
            except MailboxUnavailable:
                raise
            except MailboxError as exc:
                return str(exc)
            return ""

        self.refused.update(refused_items(uids, attempt))
        return found
