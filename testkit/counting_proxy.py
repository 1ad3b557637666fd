"""A TCP forwarder on 127.0.0.1 that counts the bytes passing each way.

Used to show what a client really downloads (e.g. that an oversized mail's body never
crosses the wire), without trusting the server's or the client's own account of it.

Example::

    with CountingProxy("127.0.0.1", 1143) as proxy:
        ...connect to 127.0.0.1:proxy.port...
    print(proxy.from_server, proxy.to_server)
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

HOST = "127.0.0.1"


class CountingProxy:
    """Forwards every connection made to HOST:port to (target_host, target_port)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.from_server = 0
        self.to_server = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._closed = False

    def __enter__(self) -> CountingProxy:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening and cut every open connection."""
        self._closed = True
        self._listener.close()
        for sock in list(self._sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        self._listener.settimeout(0.1)  # closing a socket does not wake a blocked accept()
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            server = socket.create_connection(self.target, timeout=30)
            self._sockets += [client, server]
            for source, sink, upstream in ((client, server, True), (server, client, False)):
                thread = threading.Thread(target=self._pump, args=(source, sink, upstream),
                                          daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if upstream:
                        self.to_server += len(data)
                    else:
                        self.from_server += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass
