"""Whether a folder is the watched folder under another name, asked of the server itself.

Names alone cannot tell: Microsoft 365 and Gmail fold case, Cyrus knows a folder as `Alerts`
and `INBOX.Alerts`, namespaces alias one another. A move into the watched folder would bring
the mail back as new, read again at every pass. Every folder has its own UIDVALIDITY
(RFC 3501 2.3.1.1); one that has the watched folder's, and at the same moment its UIDNEXT and
message count, is the watched folder.
"""

from __future__ import annotations

from imapclient import IMAPClient

SAMENESS = (b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES")


def is_watched(client: IMAPClient, name: str, watched: str, uidvalidity: int) -> bool:
    """Return whether the folder the server calls name is the folder watched (selected as
    watched, with UIDVALIDITY uidvalidity). One STATUS command, two when the UIDVALIDITY is
    the same."""
    target = client.folder_status(name, list(SAMENESS))
    if int(target.get(b"UIDVALIDITY", -1)) != uidvalidity:
        return False
    selected = client.folder_status(watched, list(SAMENESS))
    return all(target.get(key) == selected.get(key) for key in SAMENESS)
