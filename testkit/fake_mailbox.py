"""An in-memory mailbox with the interface a pass uses (poller.service.worker.MailboxPort), so
that the decision paths of the worker are tested in milliseconds, without a server.

It knows one watched folder of UID-numbered mails, the flags set on them and the folders they
were moved to. `search` takes the configured search as "not yet flagged" (a person reading a
mail is `flags[uid] = {"\\Seen"}`), or `UID a,b,...` for those still there. Refusals can be
set per mail, as a server answers them: FETCH or MOVE answered NO, or a FETCH that loses the
connection. IMAP behaviour proper (PEEK, MOVE fallbacks, errors on the wire) is tested against
the real Dovecot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from poller.errors import MailboxError, MailboxUnavailable

UIDVALIDITY = 7


@dataclass
class FakeMailbox:
    """Mails by UID in the watched folder; flags and moves are recorded, never applied twice."""

    mails: dict[int, bytes] = field(default_factory=dict)
    uidvalidity: int = UIDVALIDITY
    flags: dict[int, set[str]] = field(default_factory=dict)
    moved: dict[int, str] = field(default_factory=dict)
    fetched: list[list[int]] = field(default_factory=list)
    folders: set[str] = field(default_factory=set)
    sized: list[list[int]] = field(default_factory=list)
    refuse_steps: bool = False  # flag and move answer NO, as a server with a full quota would
    refuse_fetch: set[int] = field(default_factory=set)  # a FETCH naming one answers NO
    lose_fetch: set[int] = field(default_factory=set)  # a FETCH naming one loses the connection
    refuse_move: set[int] = field(default_factory=set)  # a MOVE naming one answers NO
    refuse_folders: set[str] = field(default_factory=set)  # a MOVE to one answers NO
    next_uid: int = 1

    def add(self, *raws: bytes) -> list[int]:
        """Deliver mails to the folder; return their UIDs."""
        uids = list(range(self.next_uid, self.next_uid + len(raws)))
        self.next_uid += len(raws)
        self.mails.update(zip(uids, raws, strict=True))
        return uids

    def select(self, folder: str, readonly: bool = False) -> int:
        return self.uidvalidity

    def search(self, criteria: str) -> list[int]:
        return sorted(uid for uid in self.mails if not self.flags.get(uid))

    def existing(self, uids: list[int]) -> set[int]:
        return {uid for uid in uids if uid in self.mails}

    def larger(self, uids: list[int], size: int) -> set[int]:
        return {uid for uid in uids if uid in self.mails and len(self.mails[uid]) > size}

    def sizes(self, uids: list[int]) -> dict[int, int]:
        self.sized.append(list(uids))
        return {uid: len(self.mails[uid]) for uid in uids if uid in self.mails}

    def fetch(self, uids: list[int]) -> dict[int, bytes]:
        self.fetched.append(list(uids))
        if self.lose_fetch.intersection(uids):
            raise MailboxUnavailable("fetching mail: the server closed the connection: "
                                     "socket error: EOF")
        if self.refuse_fetch.intersection(uids):
            raise MailboxError("fetching mail: fetch failed: [SERVERBUG] Internal error")
        return {uid: self.mails[uid] for uid in uids if uid in self.mails}

    def flag(self, uids: list[int], keyword: str) -> None:
        if self.refuse_steps:
            raise MailboxError("flagging mail: STORE failed: NO [OVERQUOTA]")
        for uid in uids:
            self.flags.setdefault(uid, set()).update({"\\Seen", keyword})

    def move(self, uids: list[int], folder: str) -> None:
        if self.refuse_steps:
            raise MailboxError(f"moving mail to {folder!r}: MOVE failed: NO [OVERQUOTA]")
        if folder in self.refuse_folders:
            raise MailboxError(f"creating folder {folder!r}: create failed: Invalid mailbox name")
        if self.refuse_move.intersection(uids):
            raise MailboxError(f"moving mail to {folder!r}: MOVE failed: [SERVERBUG] Internal "
                               "error")
        for uid in uids:
            if uid in self.mails:
                del self.mails[uid]
                self.moved[uid] = folder

    def ensure_folder(self, folder: str) -> str:
        if self.refuse_steps:
            raise MailboxError(f"creating folder {folder!r}: CREATE failed: NO [OVERQUOTA]")
        self.folders.add(folder)
        return folder

    def where(self, uid: int) -> str:
        """Return 'flagged', 'untouched' or the folder the mail was moved to."""
        if uid in self.moved:
            return self.moved[uid]
        return "flagged" if self.flags.get(uid) else "untouched"
