"""What every private IMAP server of the test suite shares: ports, a throw-away CA, users,
starting and stopping, and the client-side look at a mailbox (append, list messages, list
folders).

A server class (testkit.dovecot.Dovecot, testkit.cyrus.Cyrus) writes its configuration in
_prepare(), names its command line in _command() and creates a user in _create_user(); the
rest comes from ImapServer.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import signal
import socket
import ssl as ssl_module
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from imapclient import IMAPClient

from testkit.local import HOST, die_with_parent, free_ports, make_certificates

__all__ = ["HOST", "ImapAccount", "ImapServer", "make_certificates"]
CLIENT_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
START_TIMEOUT = 15.0

PROBE_USER = "harness-probe"
# User names become file names and are expanded in servers' templates; a '.' is Cyrus's
# hierarchy separator.
_FORBIDDEN_IN_NAME = frozenset(':\r\n\t/\\\0 %"*.')
_FORBIDDEN_IN_PASSWORD = frozenset(":\r\n\0")


def _check_user(name: str, password: str) -> None:
    if not name or name.startswith(".") or _FORBIDDEN_IN_NAME.intersection(name):
        raise ValueError(f"invalid user name: {name!r}")
    if not password or _FORBIDDEN_IN_PASSWORD.intersection(password):
        raise ValueError(f"invalid password: {password!r}")


def searchable_by_others(workdir: Path, server: str) -> None:
    """As root, make sure the server's unprivileged processes can reach workdir."""
    for directory in (workdir, *workdir.parents):
        if not directory.stat().st_mode & 0o001:
            raise RuntimeError(
                f"{directory} is not searchable by other users; as root, {server}'s "
                f"unprivileged processes need to reach {workdir}: pass a workdir under /tmp"
            )


@dataclass(frozen=True)
class ImapAccount:
    """One mailbox on a running private server: where to connect and how to log in."""

    host: str
    port: int
    ssl_port: int
    cafile: Path
    username: str
    password: str
    server: ImapServer = field(repr=False, compare=False)

    def client(self, ssl: bool = False) -> IMAPClient:
        """Return an IMAPClient logged in as this account (see ``ImapServer.client``)."""
        return self.server.client(self.username, self.password, ssl=ssl)

    def append(self, folder: str, raw: bytes, flags: Iterable[bytes | str] = ()) -> None:
        """Append ``raw`` to ``folder`` (written with '/' as in the settings), creating the
        folder if missing."""
        self.server.append(self.username, self.password, self.server.server_name(folder), raw,
                           flags)

    def messages(self, folder: str) -> list[tuple[int, tuple[bytes, ...], bytes]]:
        """Return ``(uid, flags, raw)`` for each message in ``folder`` (written with '/' as in
        the settings; see ``ImapServer.messages``)."""
        return self.server.messages(self.username, self.password,
                                    self.server.server_name(folder))

    def folders(self) -> list[str]:
        """Return the names of all folders of this account."""
        return self.server.folders(self.username, self.password)


class ImapServer:
    """A private IMAP server on 127.0.0.1, run as a child process with a configuration of its
    own in ``workdir`` (a fresh temporary directory, removed by ``close()``, when None).
    Ports, users, certificates and mail survive ``restart()``."""

    host = HOST
    name = "IMAP server"  # in messages
    prefix = "imap-"  # of the temporary work directory

    def __init__(self, workdir: Path | None = None) -> None:
        if shutil.which("openssl") is None:
            raise RuntimeError("openssl not found; install Debian's openssl")
        self._owns_workdir = workdir is None
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls_dir = self.workdir / "tls"
        self.cafile = self.tls_dir / "ca.crt"
        self.stderr_path = self.workdir / "server.stderr"
        self.log_path = self.workdir / "server.log"
        self.port, self.ssl_port = free_ports(2)
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._users: dict[str, str] = {}
        self._probe_password = secrets.token_hex(8)
        self._prepared = False
        self._started = False

    # -- what a server class provides -----------------------------------------------------

    def _prepare(self) -> None:
        """Create directories, certificates and the configuration (once, before the first
        start); the probe user (PROBE_USER, self._probe_password) must be able to log in."""
        raise NotImplementedError

    def _write_config(self) -> None:
        """(Re)write the configuration with the current ports."""
        raise NotImplementedError

    def _command(self) -> list[str]:
        """Return the command line that runs the server in the foreground."""
        raise NotImplementedError

    def _environment(self) -> dict[str, str] | None:
        """Return the server's environment (None: this process's)."""
        return None

    def _create_user(self, name: str, password: str) -> None:
        """Make the user able to log in, with an empty INBOX."""
        raise NotImplementedError

    def server_name(self, folder: str) -> str:
        """Return this server's name for a folder written with '/' between levels, by the
        layout its configuration gives it (what tests expect poller to map names to)."""
        return folder

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> ImapServer:
        """Start the server and return self once the probe user can log in and select INBOX.

        Raises RuntimeError with the tail of the log after START_TIMEOUT seconds or if the
        server exits. Does nothing when already running.
        """
        if self.running:
            return self
        if not self._prepared:
            self._prepare()
            self._prepared = True
        # Ports are only re-picked before the first successful start: after that clients
        # may already know them.
        attempts = 1 if self._started else 3
        for attempt in range(attempts):
            try:
                self._spawn_and_wait()
                self._started = True
                return self
            except RuntimeError:
                if attempt + 1 < attempts and "in use" in self._tail():
                    # Someone grabbed a port between picking and binding it.
                    self.port, self.ssl_port = free_ports(2)
                    self._write_config()
                    continue
                raise
        raise AssertionError("unreachable")

    def restart(self) -> None:
        """Stop and start again with the same ports, users, certificates and mail."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove the directories this object created."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ImapServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {state} {self.host}:{self.port}/{self.ssl_port} " \
               f"{self.workdir}>"

    def stop(self) -> None:
        """Stop the server: SIGTERM, wait, then SIGKILL what is left of its process group."""
        process = self._process
        self._process = None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # children the master left behind
        except ProcessLookupError:
            pass
        process.wait(timeout=STOP_TIMEOUT)

    def _spawn_and_wait(self) -> None:
        with open(self.stderr_path, "ab") as stderr:
            self._process = subprocess.Popen(
                self._command(), stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                start_new_session=True, preexec_fn=die_with_parent, env=self._environment())
        deadline = time.monotonic() + START_TIMEOUT
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise RuntimeError(f"{self.name} exited with status {code}{self._tail()}")
            try:
                self._probe()
                return
            except (OSError, IMAPClient.Error, IMAPClient.AbortError) as error:
                last_error = error
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"{self.name} did not accept a LOGIN on {HOST}:{self.port} within "
            f"{START_TIMEOUT:.0f} s (last error: {last_error!r}){self._tail()}"
        )

    def _probe(self) -> None:
        with socket.create_connection((HOST, self.port), timeout=1.0):
            pass
        imap = self.client(PROBE_USER, self._probe_password)
        try:
            # LOGIN succeeds even when the mail process cannot initialise.
            imap.select_folder("INBOX")
        finally:
            imap.logout()

    # -- users and mail ---------------------------------------------------------------------

    def add_user(self, name: str | None = None, password: str | None = None) -> tuple[str, str]:
        """Add a user and return ``(username, password)``.

        With ``name`` None a name unique to this server is made up; with ``password`` None a
        random one. The user can log in at once, also while the server runs.
        """
        with self._lock:
            if name is None:
                name = f"user{next(self._counter):04d}-{secrets.token_hex(3)}"
            if password is None:
                password = secrets.token_hex(8)
            _check_user(name, password)
            if name in self._users or name == PROBE_USER:
                raise ValueError(f"user {name!r} already exists")
            self._create_user(name, password)
            self._users[name] = password
        return name, password

    @property
    def running(self) -> bool:
        """True while the server's master process is alive."""
        return self._process is not None and self._process.poll() is None

    def _tail(self, lines: int = 30) -> str:
        """Return the last lines of the server's stderr and log, for error messages."""
        parts = []
        for path in (self.stderr_path, self.log_path):
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            tail = "\n".join(text.splitlines()[-lines:])
            if tail:
                parts.append(f"\n--- {path} (last {lines} lines) ---\n{tail}")
        return "".join(parts)

    def account(self, name: str | None = None, password: str | None = None) -> ImapAccount:
        """Add a user (as ``add_user``) and return it as an ``ImapAccount``."""
        username, password = self.add_user(name, password)
        return ImapAccount(
            host=self.host,
            port=self.port,
            ssl_port=self.ssl_port,
            cafile=self.cafile,
            username=username,
            password=password,
            server=self,
        )

    def ssl_context(self) -> ssl_module.SSLContext:
        """Return a client SSLContext that trusts only this server's CA."""
        return ssl_module.create_default_context(cafile=str(self.cafile))

    def client(self, user: str, password: str, ssl: bool = False) -> IMAPClient:
        """Return an IMAPClient logged in as ``user``; the caller logs out.

        ``ssl=False`` connects to the plain port without TLS; ``ssl=True`` to
        the IMAPS port, verifying the certificate against ``cafile``.
        """
        if ssl:
            imap = IMAPClient(
                self.host,
                port=self.ssl_port,
                ssl=True,
                ssl_context=self.ssl_context(),
                timeout=CLIENT_TIMEOUT,
            )
        else:
            imap = IMAPClient(self.host, port=self.port, ssl=False, timeout=CLIENT_TIMEOUT)
        try:
            imap.login(user, password)
        except BaseException:
            imap.shutdown()
            raise
        return imap

    def append(
        self,
        user: str,
        password: str,
        folder: str,
        raw: bytes,
        flags: Iterable[bytes | str] = (),
    ) -> None:
        """Append ``raw`` to ``folder`` of ``user`` with ``flags``; create the folder if missing.

        Messages should use CRLF line ends: the IMAP client library turns bare
        LF into CRLF, so only CRLF messages come back byte for byte.
        """
        imap = self.client(user, password)
        try:
            if not imap.folder_exists(folder):
                imap.create_folder(folder)
            imap.append(folder, raw, flags=tuple(flags))
        finally:
            imap.logout()

    def messages(self, user: str, password: str, folder: str) -> list[tuple[int, tuple[bytes, ...], bytes]]:
        """Return ``(uid, flags, raw)`` for every message in ``folder``, in UID order.

        ``raw`` is fetched with BODY.PEEK[] (so \\Seen is not set); ``flags``
        is sorted and leaves out the per-session \\Recent flag.  A missing
        folder, or one that only exists as a parent of others, gives ``[]``.
        """
        imap = self.client(user, password)
        try:
            listed = imap.list_folders("", folder)
            if not listed or {b"\\Noselect", b"\\NonExistent"} & set(listed[0][0]):
                return []
            imap.select_folder(folder, readonly=True)
            uids = imap.search("ALL")
            if not uids:
                return []
            data = imap.fetch(uids, [b"FLAGS", b"BODY.PEEK[]"])
            return [
                (
                    uid,
                    tuple(sorted(flag for flag in data[uid][b"FLAGS"] if flag != b"\\Recent")),
                    data[uid][b"BODY[]"],
                )
                for uid in sorted(data)
            ]
        finally:
            imap.logout()

    def folders(self, user: str, password: str) -> list[str]:
        """Return the names of all folders of ``user`` (as LIST reports them)."""
        imap = self.client(user, password)
        try:
            return [name for _flags, _delimiter, name in imap.list_folders()]
        finally:
            imap.logout()
