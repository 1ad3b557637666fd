"""What every private IMAP server of the test suite shares: ports, a throw-away CA, accounts,
and the client-side look at a mailbox (append, list messages, list folders).

A server class (testkit.dovecot.Dovecot) sets host, port, ssl_port and cafile and implements
add_user(); the rest comes from ImapServer.
"""

from __future__ import annotations

import ctypes
import os
import random
import secrets
import signal
import socket
import ssl as ssl_module
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from imapclient import IMAPClient

HOST = "127.0.0.1"
PORTS_FROM = 20000  # servers' ports: from here up to the kernel's range for outgoing connections
CLIENT_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports on 127.0.0.1 that are free right now.

    They lie below the kernel's range for outgoing connections: a server stopped and started
    again on its ports (``restart()``) must not find one taken meanwhile as the local port of
    some client's connection, which happens to a port from that range.
    """
    room = range(PORTS_FROM, max(PORTS_FROM, _ephemeral_low()))
    candidates = random.sample(room, min(200, len(room)))
    sockets: list[socket.socket] = []
    try:
        for port in candidates:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((HOST, port))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
            if len(sockets) == count:
                break
        while len(sockets) < count:  # no room below the range: let the kernel pick
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _ephemeral_low() -> int:
    """Return the lowest port the kernel gives outgoing connections (Linux's default: 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def die_with_parent() -> None:
    """preexec_fn: have the kernel send SIGTERM to dovecot if we die first.

    Linux ties this to the thread that started dovecot, so start the server
    from a thread that lives as long as it should (the main thread in tests).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def make_certificates(tls_dir: Path) -> Path:
    """Create a CA and a server certificate for 127.0.0.1/localhost with openssl in tls_dir
    (ca.crt, server.crt, server.key); return the CA certificate's path."""
    cafile = tls_dir / "ca.crt"
    cnf = tls_dir / "openssl.cnf"
    cnf.write_text(
        "[req]\n"
        "distinguished_name = dn\n"
        "prompt = no\n"
        "[dn]\n"
        "CN = ates-poller test CA\n"
        "[v3_ca]\n"
        "basicConstraints = critical, CA:TRUE\n"
        "keyUsage = critical, keyCertSign, cRLSign\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid:always\n"
        "[v3_server]\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid:always\n"
    )
    d = tls_dir
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        ["openssl", "req", "-config", cnf, "-x509", *ec, "-keyout", d / "ca.key",
         "-out", cafile, "-days", "3650", "-extensions", "v3_ca",
         "-subj", "/CN=ates-poller test CA"],
        ["openssl", "req", "-config", cnf, "-new", *ec, "-keyout", d / "server.key",
         "-out", d / "server.csr", "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", d / "server.csr", "-CA", cafile,
         "-CAkey", d / "ca.key", "-set_serial", f"0x{secrets.token_hex(8)}",
         "-days", "825", "-extfile", cnf, "-extensions", "v3_server",
         "-out", d / "server.crt"],
    ]  # fmt: skip
    env = {**os.environ, "OPENSSL_CONF": str(cnf)}
    for command in commands:
        result = subprocess.run(
            [str(part) for part in command], capture_output=True, env=env, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(map(str, command))} failed:\n{result.stderr.decode(errors='replace')}"
            )
    (d / "server.key").chmod(0o600)
    (d / "ca.key").chmod(0o600)
    return cafile


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
        """Append ``raw`` to ``folder``, creating the folder if missing."""
        self.server.append(self.username, self.password, folder, raw, flags)

    def messages(self, folder: str) -> list[tuple[int, tuple[bytes, ...], bytes]]:
        """Return ``(uid, flags, raw)`` for each message in ``folder`` (see ``ImapServer.messages``)."""
        return self.server.messages(self.username, self.password, folder)

    def folders(self) -> list[str]:
        """Return the names of all folders of this account."""
        return self.server.folders(self.username, self.password)


class ImapServer:
    """The client side of a private IMAP server on 127.0.0.1: accounts, logins, mail."""

    host = HOST
    port: int
    ssl_port: int
    cafile: Path

    _process: subprocess.Popen[bytes] | None = None
    stderr_path: Path
    log_path: Path

    def add_user(self, name: str | None = None, password: str | None = None) -> tuple[str, str]:
        """Add a user and return ``(username, password)`` (made up when None)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server: SIGTERM, wait, then SIGKILL its process group."""
        process = self._process
        self._process = None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=STOP_TIMEOUT)

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
