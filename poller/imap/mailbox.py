"""The IMAP side: connect, search, fetch with PEEK, flag and move, by UID only.

Folders are named as the settings write them ('/' between levels) and mapped to the server's
names here (poller.folders). Every imapclient, socket and ssl error is translated here,
once, into a MailboxError subclass.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from poller.batches import UID_BATCH, chunks
from poller.config.settings import ImapSettings
from poller.errors import MailboxAuthError, MailboxError, MailboxUnavailable
from poller.folders import FolderNames, from_namespace, same_server_name
from poller.imap import UNAVAILABLE
from poller.imap.responses import announces_mail
from poller.imap.sameness import is_watched

logger = logging.getLogger(__name__)

SEEN = b"\\Seen"
DELETED = b"\\Deleted"


class _NoMailInTrace(logging.Filter):
    """Cut mail contents out of the IMAP trace (-vv): imaplib logs every fetched mail whole,
    and with it the ATES PW of every token. imapclient already masks the LOGIN line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("untagged_responses["):  # "...[FETCH] 0 += [...]" and "... => [...]"
            record.msg, record.args = message.partition("]")[0] + "] [contents not logged]", ()
        return True


_TRACE = logging.getLogger("imapclient.imaplib")
_TRACE.addFilter(_NoMailInTrace())


def ssl_context(settings: ImapSettings) -> ssl.SSLContext:
    """Return the TLS context: system trust store or [imap] cafile; no verification if asked."""
    context = ssl.create_default_context(cafile=settings.cafile)
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Run an IMAP step, re-raising lower-layer errors as MailboxError subclasses."""
    try:
        yield
    except MailboxError:
        raise
    except LoginError as exc:
        if UNAVAILABLE in str(exc):  # it could not check the login now (RFC 5530)
            raise MailboxUnavailable(f"{what}: the server cannot check logins right now: "
                                     f"{exc}") from None
        raise MailboxAuthError(f"{what}: the server refused the login; check [imap] username "
                               "and password") from None
    except ssl.SSLCertVerificationError as exc:
        raise MailboxAuthError(
            f"{what}: the server's certificate is not trusted ({exc.verify_message}); "
            "set [imap] cafile to the CA that signed it"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason != "WRONG_VERSION_NUMBER":
            raise MailboxUnavailable(f"{what}: {type(exc).__name__}: {exc}") from None
        raise MailboxAuthError(f"{what}: the server does not speak TLS on this port; check "
                               "[imap] port and security (ssl is usually port 993)") from None
    except IMAPClientAbortError as exc:
        raise MailboxUnavailable(f"{what}: the server closed the connection: {exc}") from None
    except TimeoutError:
        raise MailboxUnavailable(f"{what}: timed out") from None
    except (ConnectionError, EOFError, OSError) as exc:
        raise MailboxUnavailable(f"{what}: {type(exc).__name__}: {exc}") from None
    except IMAPClientError as exc:
        raise MailboxError(f"{what}: {exc}") from None


class Mailbox:
    """One logged-in IMAP connection. Use as a context manager; logs out on exit."""

    def __init__(self, settings: ImapSettings):
        self.settings = settings
        self.client: IMAPClient | None = None
        self._folders: set[str] = set()
        self._names: FolderNames | None = None
        self._exists = 0  # mails in the selected folder, as the server last said
        self._selected, self._validity = "", 0  # the selected folder's server name, UIDVALIDITY

    def __enter__(self) -> Mailbox:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        """Open the connection (TLS as configured) and log in."""
        s = self.settings
        where = f"IMAP {s.host}:{s.port}"
        with translated(f"connecting to {where}"):
            context = ssl_context(s) if s.security != "none" else None
            client = IMAPClient(s.host, port=s.port, ssl=s.security == "ssl",
                                ssl_context=context, timeout=s.timeout)
            if not _TRACE.isEnabledFor(logging.DEBUG):
                # imapclient always turns imaplib's trace on, and imaplib then formats each
                # fetched mail with repr() even when the line is dropped: a 25 MB mail cost
                # another 25 MB or more, and the CPU to build it. There is no public switch.
                client._imap.debug = 0
            try:
                if s.security == "starttls":
                    # Never fall back to plaintext: a failed STARTTLS ends the connection.
                    if b"STARTTLS" not in client.capabilities():
                        raise MailboxAuthError(f"{where} does not offer STARTTLS; "
                                               "use security = ssl, or none on a trusted network")
                    client.starttls(context)
                if s.auth == "password":
                    client.login(s.username, s.password)
                else:
                    # the token providers (and msal or google-auth) only when configured
                    from poller.imap import oauth2

                    oauth2.login(client, s)
            except BaseException:
                try:
                    client.shutdown()
                except OSError:
                    pass  # after a failed TLS handshake the socket is gone; keep the real error
                raise
        self.client = client
        logger.debug("logged in to %s as %s (%s)", where, s.username, s.auth)

    def close(self) -> None:
        """Log out; a connection that is already broken is just dropped."""
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.logout()
        except (IMAPClientError, OSError):
            client.shutdown()

    def _client(self) -> IMAPClient:
        if self.client is None:
            raise MailboxUnavailable("not connected")
        return self.client

    def abort(self) -> None:
        """Cut the connection from another thread, so that a call blocked on it fails at once."""
        client = self.client
        if client is None:
            return
        try:
            client.socket().shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def has_capability(self, name: str) -> bool:
        """Return True if the server announces the capability (e.g. 'IDLE')."""
        with translated("reading capabilities"):
            return self._client().has_capability(name)

    def server_name(self, folder: str) -> str:
        """Return the server's name for a folder as the settings write it (asks the server's
        NAMESPACE once per connection)."""
        if self._names is None:
            with translated("reading the folder namespace"):
                client = self._client()
                if client.has_capability("NAMESPACE"):
                    personal, other, shared = client.namespace()
                    self._names = from_namespace(list(personal or []),
                                                 [list(other or []), list(shared or [])])
                else:
                    listed = client.list_folders("", "")
                    separator = listed[0][1] if listed and listed[0][1] else b"/"
                    self._names = FolderNames(separator=separator.decode("ascii", "replace"))
        return self._names.server(folder)

    def _named(self, folder: str) -> str:
        """Return how messages name a folder: as written, and as the server knows it."""
        name = self.server_name(folder)
        return repr(folder) if name == folder else f"{folder!r} ({name!r} on the server)"

    def select(self, folder: str, readonly: bool = False) -> int:
        """Select folder (read-write unless READONLY); return its UIDVALIDITY."""
        try:
            with translated(f"selecting {self._named(folder)}"):
                info = self._client().select_folder(self.server_name(folder), readonly=readonly)
        except MailboxUnavailable:
            raise
        except MailboxError as exc:
            raise MailboxError(f"{exc}; check that the folder exists and can hold mail") from None
        self._exists = int(info.get(b"EXISTS", 0))
        self._selected, self._validity = self.server_name(folder), int(info[b"UIDVALIDITY"])
        return self._validity

    def exists(self, folder: str) -> bool:
        """Return True if the folder exists."""
        with translated(f"looking for folder {self._named(folder)}"):
            return bool(self._client().folder_exists(self.server_name(folder)))

    def count(self, folder: str) -> int:
        """Return the number of mails in folder not flagged \\Deleted (0 if it does not exist);
        selects it read-only."""
        if not self.exists(folder):
            return 0
        self.select(folder, readonly=True)
        return len(self.search("ALL"))

    def deleted(self) -> int:
        """Return the number of mails in the selected folder flagged \\Deleted."""
        with translated("counting mail flagged \\Deleted"):
            return len(self._client().search([b"DELETED"]))

    def ensure_folder(self, folder: str) -> str:
        """Create folder unless it exists; return its name on the server."""
        name = self.server_name(folder)
        if folder in self._folders:
            return name
        with translated(f"creating folder {self._named(folder)}"):
            client = self._client()
            if not client.folder_exists(name):
                client.create_folder(name)
                logger.info("created IMAP folder %r", name)
        self._folders.add(folder)
        return name

    def search(self, criteria: str) -> list[int]:
        """Return the UIDs matching an IMAP search (e.g. 'UNSEEN'), lowest first, skipping \\Deleted."""
        with translated(f"searching {criteria!r}"):
            uids = self._client().search(f"{criteria} NOT DELETED")
        return sorted(uids)

    def larger(self, uids: list[int], size: int) -> set[int]:
        """Return those of UIDS (lowest first) that are larger than SIZE bytes: one SEARCH,
        however many UIDs."""
        return set(self.search(f"UID {uids[0]}:{uids[-1]} LARGER {size}")).intersection(uids)

    def sizes(self, uids: list[int]) -> dict[int, int]:
        """Return RFC822.SIZE for each UID that still exists."""
        out: dict[int, int] = {}
        for chunk in chunks(uids, UID_BATCH):
            with translated("fetching sizes"):
                data = self._client().fetch(chunk, [b"RFC822.SIZE"])
            out.update({uid: int(item[b"RFC822.SIZE"]) for uid, item in data.items()
                        if b"RFC822.SIZE" in item})
        return out

    def fetch(self, uids: list[int]) -> dict[int, bytes]:
        """Return the raw bytes of each UID, fetched with BODY.PEEK[] so no flag changes."""
        with translated("fetching mail"):
            data = self._client().fetch(uids, [b"BODY.PEEK[]"])
        # A body of NIL: the message vanished (expunged by another session) since the SEARCH.
        return {uid: item[b"BODY[]"] for uid, item in data.items()
                if item.get(b"BODY[]") is not None}

    def existing(self, uids: list[int]) -> set[int]:
        """Return those of the UIDs that are still in the selected folder (not \\Deleted)."""
        found: set[int] = set()
        for chunk in chunks(uids, UID_BATCH):
            found.update(self.search("UID " + ",".join(map(str, chunk))))
        return found

    def message_ids(self, uids: list[int]) -> dict[int, str]:
        """Return the Message-ID header of each UID ('' when it has none)."""
        out: dict[int, str] = {}
        for chunk in chunks(uids, UID_BATCH):
            with translated("fetching Message-IDs"):
                data = self._client().fetch(chunk, [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            for uid, item in data.items():
                raw = next((v for k, v in item.items() if k.startswith(b"BODY[HEADER")), b"")
                _, _, value = (raw or b"").decode("utf-8", "replace").partition(":")
                out[uid] = " ".join(value.split())
        return out

    def flag(self, uids: list[int], keyword: str) -> None:
        """Mark the UIDs \\Seen and tag them with keyword."""
        with translated("flagging mail"):
            self._client().add_flags(uids, [SEEN, keyword.encode("ascii")], silent=True)

    def unflag(self, uids: list[int], keyword: str) -> None:
        """Remove \\Seen and keyword from the UIDs, so that a pass sees them as new."""
        with translated("removing flags"):
            self._client().remove_flags(uids, [SEEN, keyword.encode("ascii")], silent=True)

    def idle_wait(self, seconds: float, halt: threading.Event) -> bool:
        """Wait in IDLE on the selected folder up to SECONDS; return True when new mail came.

        Returns early (False) when HALT is set. Raises MailboxUnavailable if the server says
        BYE or the connection dies, which an IDLE alone would not notice.
        """
        with translated("waiting for new mail (IDLE)"):
            client = self._client()
            client.idle()
            deadline = time.monotonic() + seconds
            new = False
            while not new and not halt.is_set():
                step = min(1.0, deadline - time.monotonic())
                if step <= 0:
                    break
                started = time.monotonic()
                responses = client.idle_check(timeout=step)
                new, self._exists = announces_mail(responses, self._exists)
                if not responses and time.monotonic() - started < step / 2:
                    break  # readable but nothing to read: the peer may have gone; DONE tells
            _, responses = client.idle_done()
            more, self._exists = announces_mail(responses, self._exists)
            return new or more

    def move(self, uids: list[int], folder: str) -> None:
        """Move UIDs to folder: MOVE, else COPY + \\Deleted + UID EXPUNGE of just those UIDs.

        Refused (MailboxError) when folder is the selected one under another spelling (case,
        'INBOX.Alerts' on Cyrus, an alias): the mail would come back as new, for ever."""
        name, problem = self.server_name(folder), f"moving mail to {self._named(folder)}"
        watched = MailboxError(f"{problem}: that is the watched folder itself; give the "
                               "[mailbox] folder another name")
        if same_server_name(name, self._selected):
            raise watched
        name = self.ensure_folder(folder)
        with translated(problem):
            client = self._client()
            if is_watched(client, name, self._selected, self._validity):
                raise watched
            capabilities = client.capabilities()
            if b"MOVE" in capabilities:
                client.move(uids, name)
                return
            client.copy(uids, name)
            client.add_flags(uids, [DELETED], silent=True)
            # Without UIDPLUS an EXPUNGE would also remove mail others marked \Deleted,
            # so the originals are left flagged instead.
            if b"UIDPLUS" in capabilities:
                client.uid_expunge(uids)
