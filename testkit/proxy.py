"""A TCP proxy on 127.0.0.1 in front of the test Dovecot that breaks connections on purpose.

    with TcpProxy(dovecot.port, cuts=[30_000]) as proxy:
        ...connect to proxy.port: the first connection is cut after 30,000 bytes from the
        server; later connections pass untouched...

Faults, each applied to one connection at most:

* ``cuts``: for the 1st, 2nd, ... accepted connection, cut it after that many bytes from the
  server (None: never);
* ``swallow``: once the client sends these bytes, forward them, then drop what the server
  answers and cut the connection (the command ran, the client never hears of it);
* ``refuse``: once the client sends these bytes, cut the connection without forwarding them;
* ``bye``: once the client sends these bytes, answer ``* BYE`` in the server's place and cut;
* ``stall``: once the client sends these bytes, forward them and drop every answer, leaving
  the connection open (a server that hangs);
* ``rewrite``: pairs of bytes replaced in what the server sends (same length, e.g. to hide
  STARTTLS, or MOVE and UIDPLUS from the capabilities);
* ``deny``: a test of each command line the client sends, on every connection: a command it
  is true for never reaches the server, and the proxy answers ``<tag> NO [SERVERBUG] …`` in
  the server's place (a server that refuses one message, or one folder).

``hold()`` stops forwarding in both directions on every connection, as a network that holds
packets; ``release()`` lets them through again.

``sent`` keeps what each client sent, to check what went over the wire.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

HOST = "127.0.0.1"


class TcpProxy:
    def __init__(self, target_port: int, cuts: list[int | None] | None = None,
                 swallow: bytes | None = None, refuse: bytes | None = None,
                 bye: bytes | None = None, stall: bytes | None = None,
                 rewrite: tuple[tuple[bytes, bytes], ...] = (),
                 deny: Callable[[bytes], bool] | None = None) -> None:
        if any(len(old) != len(new) for old, new in rewrite):
            raise ValueError("rewrite must keep the length")
        self.target_port = target_port
        self.cuts = list(cuts or [])
        self.swallow = swallow
        self.refuse = refuse
        self.bye = bye
        self.stall = stall
        self.rewrite = rewrite
        self.deny = deny
        self.denied: list[bytes] = []
        self.sent: list[bytearray] = []
        self.connections = 0
        self.faults = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._flowing = threading.Event()
        self._flowing.set()
        self._open: list[socket.socket] = []
        self._used: set[str] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def hold(self) -> None:
        """Stop forwarding anything, both ways, until release()."""
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self._listener.close()
        with self._lock:
            for sock in self._open:
                _close(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection((HOST, self.target_port), timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                index = self.connections
                self.connections += 1
                self.sent.append(bytearray())
                self._open += [client, server]
            conn = _Connection(self, index, client, server)
            threading.Thread(target=conn.upstream, daemon=True).start()
            threading.Thread(target=conn.downstream, daemon=True).start()

    def _take_fault(self, kind: str) -> bool:
        """Return True the first time a fault of this kind is due, then False."""
        with self._lock:
            if kind in self._used:
                return False
            self._used.add(kind)
            self.faults += 1
            return True


class _Connection:
    def __init__(self, proxy: TcpProxy, index: int, client: socket.socket,
                 server: socket.socket) -> None:
        self.proxy = proxy
        self.index = index
        self.client = client
        self.server = server
        self.limit = proxy.cuts[index] if index < len(proxy.cuts) else None
        self.swallowing = False
        self.to_client = threading.Lock()
        self.line = bytearray()  # the client's command line so far (with deny)

    def cut(self) -> None:
        _close(self.client)
        _close(self.server)

    def upstream(self) -> None:
        """Client to server."""
        seen = bytearray()
        p = self.proxy
        while True:
            try:
                data = self.client.recv(65536)
            except OSError:
                data = b""
            p._flowing.wait()
            if not data:
                _shut(self.server)
                return
            seen += data
            p.sent[self.index] += data
            if p.deny:
                data = self._denied(data)
                if not data:
                    continue
            if p.refuse and p.refuse in seen and p._take_fault("refuse"):
                self.cut()
                return
            if p.bye and p.bye in seen and p._take_fault("bye"):
                try:
                    self.client.sendall(b"* BYE Server shutting down.\r\n")
                finally:
                    self.cut()
                return
            # Set before sending: the answer may come at once.
            cut_later = bool(p.swallow and p.swallow in seen and p._take_fault("swallow"))
            if cut_later or (p.stall and p.stall in seen and p._take_fault("stall")):
                self.swallowing = True
            try:
                self.server.sendall(data)
            except OSError:
                self.cut()
                return
            if cut_later:
                time.sleep(0.5)  # the server runs the command; its answer is dropped
                self.cut()
                return
            del seen[:-64]

    def downstream(self) -> None:
        """Server to client."""
        passed = 0
        p = self.proxy
        while True:
            try:
                data = self.server.recv(65536)
            except OSError:
                data = b""
            p._flowing.wait()
            if not data:
                _shut(self.client)
                return
            if self.swallowing:
                continue
            for old, new in p.rewrite:
                data = data.replace(old, new)
            if self.limit is not None and passed + len(data) >= self.limit:
                try:
                    self.client.sendall(data[: self.limit - passed])
                except OSError:
                    pass
                with p._lock:
                    p.faults += 1
                self.cut()
                return
            passed += len(data)
            try:
                with self.to_client:
                    self.client.sendall(data)
            except OSError:
                self.cut()
                return

    def _denied(self, data: bytes) -> bytes:
        """Return what of DATA goes on to the server: whole lines, less those denied."""
        self.line += data
        out = bytearray()
        while b"\r\n" in self.line:
            end = self.line.index(b"\r\n") + 2
            line = bytes(self.line[:end])
            del self.line[:end]
            if self.proxy.deny(line):
                self.proxy.denied.append(line)
                tag = line.split(b" ", 1)[0]
                with self.to_client:
                    self.client.sendall(tag + b" NO [SERVERBUG] refused by the test proxy\r\n")
            else:
                out += line
        return bytes(out)


def uids_of(line: bytes, command: bytes) -> set[int]:
    """Return the UIDs a client's `<tag> UID <command> <set> …` line names (empty for others)."""
    parts = line.split()
    if len(parts) < 4 or parts[1].upper() != b"UID" or parts[2].upper() != command:
        return set()
    found: set[int] = set()
    for item in parts[3].split(b","):
        low, _, high = item.partition(b":")
        found.update(range(int(low), int(high or low) + 1))
    return found


def refusing(uid: int, *commands: bytes) -> Callable[[bytes], bool]:
    """Return a ``deny`` test for every body FETCH naming UID (and the other COMMANDS, e.g.
    b"MOVE", naming it): a server that cannot return one message."""
    def deny(line: bytes) -> bool:
        if uid in uids_of(line, b"FETCH"):
            return b"BODY" in line.upper()
        return any(uid in uids_of(line, command) for command in commands)
    return deny


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
