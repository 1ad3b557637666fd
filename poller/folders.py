"""Folder names as the settings write them ('/' between levels, e.g. ATES/Processed): when two
name the same folder, and the names a server knows, from its hierarchy separator and personal
namespace (RFC 2342). Pure: the settings check names with it, the IMAP side maps them.

Cyrus and Courier put personal folders under 'INBOX.' with '.' between levels: there
'Processed' is INBOX.Processed and 'ATES/Processed' is INBOX.ATES.Processed. Dovecot's stock
namespace has no prefix and '/' as separator, so names stay as written. INBOX is always INBOX,
and a name already in the server's form (INBOX.Alerts on Cyrus, in any case: inbox.Alerts
never becomes INBOX.inbox.Alerts) or in another namespace (e.g. shared folders) is used as it
is.

Microsoft 365 and Gmail fold case in folder names (Alerts and alerts are one folder), and every
server folds INBOX: `same_folder` and `same_server_name` compare names without case, which
is safe everywhere: the settings refuse target folders that differ from the watched one only in
case.
"""

from __future__ import annotations

from dataclasses import dataclass

INBOX = "INBOX"


def levels(folder: str) -> list[str]:
    """Return the levels of a folder name: empty ones ('INBOX/', 'A//B') dropped, INBOX in
    capitals in any case."""
    parts = [part for part in folder.split("/") if part]
    if parts and parts[0].upper() == INBOX:
        parts[0] = INBOX
    return parts


def same_folder(one: str, other: str) -> bool:
    """Return whether two folder names, as the settings write them, may name the same folder:
    their levels equal without case (Microsoft 365 and Gmail fold it). (The server may map two
    names to one folder still, e.g. 'Alerts' and 'INBOX.Alerts' on Cyrus: a move there is
    refused when it is tried, see poller.imap.mailbox.)"""
    return [p.casefold() for p in levels(one)] == [p.casefold() for p in levels(other)]


@dataclass(frozen=True)
class FolderNames:
    """The personal namespace's prefix and separator, and the prefixes of the other
    namespaces (other users', shared), which are left alone."""

    prefix: str = ""
    separator: str = "/"
    elsewhere: tuple[str, ...] = ()

    def server(self, folder: str) -> str:
        """Return the server's name for a folder written with '/' between levels."""
        parts = levels(folder)
        if not parts:
            return folder
        name = self.separator.join(parts)
        if name.upper() == INBOX or name.upper().startswith(INBOX + self.separator):
            return INBOX + name[len(INBOX):]
        if any(name.startswith(other) for other in self.elsewhere):
            return name
        if self.prefix and not name.startswith(self.prefix):
            if name.upper().startswith(self.prefix.upper()):  # the server's form, another case
                return self.prefix + name[len(self.prefix):]
            return self.prefix + name
        return name


def same_server_name(one: str, other: str) -> bool:
    """Return whether two server names may be one folder: equal without case."""
    return one.casefold() == other.casefold()


def from_namespace(personal: list[tuple[str, str | None]],
                   others: list[list[tuple[str, str | None]]]) -> FolderNames:
    """Return the naming of a server's NAMESPACE answer: its first personal namespace, and
    the non-empty prefixes of the others."""
    prefix, separator = personal[0] if personal else ("", None)
    elsewhere = tuple(p for namespace in others for p, _ in namespace if p)
    return FolderNames(prefix=prefix, separator=separator or "/", elsewhere=elsewhere)
