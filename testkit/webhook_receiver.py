"""A webhook receiver on 127.0.0.1 for the tests and the demo: the standard library's http.server
in a thread, checking each delivery's signature as a receiver must (its own HMAC code, not
poller's).

It answers 200 to a well-signed POST, 401 to a badly signed one, or what the test scripts:
`answers` (status codes for the next requests), `hang()` (hold every request unanswered until
`release()`), `trickle` (answer a byte at a time, every read well within any timeout: "status"
a status line and headers that never end, "continue" `100 Continue` after `100 Continue`,
"body" a 200 whose body never ends), `stop()`/`start()` (nothing listens on the port in
between).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

MAX_BODY = 1024 * 1024
TRICKLES = {"status": (b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a"),
            "continue": (b"", b"HTTP/1.1 100 Continue\r\n\r\n"),
            "body": (b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n", b"a")}


@dataclass(frozen=True)
class Delivery:
    """One POST as the receiver saw it, and what it answered (0: held, never answered)."""

    id: str  # X-Ates-Delivery
    event: str  # X-Ates-Event
    signed: bool  # X-Ates-Signature matched X-Ates-Timestamp and the body
    body: dict
    raw: bytes
    status: int
    timestamp: str = ""  # X-Ates-Timestamp
    signature: str = ""  # X-Ates-Signature


def signature_matches(secret: str, raw: bytes, header: str, timestamp: str = "") -> bool:
    """Return whether header is 'sha256=' + the hex HMAC-SHA256 of 'timestamp.raw' with
    secret."""
    signed = timestamp.encode("ascii", "replace") + b"." + raw
    expected = "sha256=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), (header or "").encode("ascii",
                                                                                "replace"))


class Receiver:
    """Listens on 127.0.0.1 (a port picked at run time, kept across stop/start)."""

    def __init__(self, secret: str, on_delivery: Callable[[Delivery], None] | None = None,
                 path: str = "/hooks/ates", tls: ssl.SSLContext | None = None):
        self.secret = secret
        self.tls = tls  # serve HTTPS with this context
        self.path = path
        self.on_delivery = on_delivery
        self.answers: list[int] = []
        self.trickle: str | None = None
        self.delay = 0.0  # seconds before each answer
        self.arrived = threading.Event()  # set when a request comes in
        self.trickle_pause = 0.2  # seconds between two bytes (or two 100 Continue)
        self.requests: list[Delivery] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._released.set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{self.path}"

    @property
    def taken(self) -> list[Delivery]:
        """The deliveries answered 2xx, in the order they came."""
        with self._lock:
            return [d for d in self.requests if 200 <= d.status < 300]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                receiver._handle(self)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        server.block_on_close = False
        self._server, self.port = server, server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                                        name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections to the port are refused until start()."""
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def hang(self) -> None:
        """Hold every request unanswered until release()."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        self.arrived.set()
        length = min(int(request.headers.get("Content-Length") or 0), MAX_BODY)
        raw = request.rfile.read(length)
        stamp = request.headers.get("X-Ates-Timestamp", "")
        signed = stamp.isdigit() and signature_matches(
            self.secret, raw, request.headers.get("X-Ates-Signature", ""), stamp)
        held = not self._released.is_set()
        time.sleep(self.delay)
        if held:
            self._released.wait(60)
        with self._lock:
            status = 401 if not signed else self.answers.pop(0) if self.answers else 200
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            delivery = Delivery(request.headers.get("X-Ates-Delivery", ""),
                                request.headers.get("X-Ates-Event", ""), signed, body, raw,
                                0 if held else status, stamp,
                                request.headers.get("X-Ates-Signature", ""))
            self.requests.append(delivery)
        if self.on_delivery is not None:
            self.on_delivery(delivery)
        if held:
            return  # the sender gave up long ago; answering would only hit a closed socket
        if self.trickle is not None:
            self._trickle(request, *TRICKLES[self.trickle])
            return
        request.send_response(status)
        request.send_header("Content-Length", "0")
        request.end_headers()

    def _trickle(self, request: BaseHTTPRequestHandler, head: bytes, unit: bytes) -> None:
        """Send head, then unit after unit, a pause apart, until the sender hangs up (or a
        minute has gone by)."""
        ends = time.monotonic() + 60
        try:
            for chunk in (head[i:i + 1] for i in range(len(head))):
                request.wfile.write(chunk)
                request.wfile.flush()
                time.sleep(self.trickle_pause / 4)
            while time.monotonic() < ends and self._server is not None:
                request.wfile.write(unit)
                request.wfile.flush()
                time.sleep(self.trickle_pause)
        except OSError:
            pass
        request.close_connection = True

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
