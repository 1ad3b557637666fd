"""Network calls with an overall deadline, whatever the other side sends.

A socket timeout bounds each read, not the exchange: a peer that trickles its answer a byte at a
time (a status line, `100 Continue` after `100 Continue`, a slow body) keeps every read under the
timeout and the call alive for ever. Here the exchange runs in a thread of its own while the
caller waits on a monotonic deadline (and on a stop event); when either comes first the
connection's socket is shut down, which ends any read in hand at once.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

POLL = 0.05  # seconds between two looks at the stop event


class Stopped(Exception):  # noqa: N818 - a request, not an error
    """The stop event was set before the call ended."""


def within(call: Callable[[], T], seconds: float, stop: threading.Event | None = None,
           abort: Callable[[], None] | None = None, name: str = "bounded-call") -> T:
    """Return call()'s result, or raise what it raised, if it ends within seconds.

    Raises TimeoutError when it has not, Stopped when stop is set first; abort() is called then,
    to end the call's I/O (the call's thread is a daemon, left to end on its own).
    """
    done = threading.Event()
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    deadline = time.monotonic() + max(0.0, seconds)
    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    while not done.is_set():
        left = deadline - time.monotonic()
        stopped = stop is not None and stop.is_set()
        if left <= 0 or stopped:
            if done.is_set():  # it ended just now, on its own: its outcome counts
                break
            if abort is not None:
                abort()  # what the call raises then is the cut's doing, not an outcome
            raise Stopped() if stopped else TimeoutError(f"no result within {seconds:g}s")
        done.wait(min(left, POLL) if stop is not None else left)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, reason, headers, and the body's first bytes."""

    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes


def post(host: str, port: int | None, target: str, data: bytes, headers: dict[str, str],
         seconds: float, context: ssl.SSLContext | None = None,
         stop: threading.Event | None = None, limit: int = 64 * 1024) -> Answer:
    """POST data to host (https when context is given) and return the answer, its body cut at
    limit bytes; the whole exchange, connecting included, ends within seconds.

    Raises TimeoutError past the deadline, Stopped when stop is set first, OSError or
    http.client.HTTPException for a connection or protocol failure. Redirects are answers like
    any other: never followed.
    """
    if context is not None:
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=seconds, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=seconds)

    def exchange() -> Answer:
        connection.request("POST", target, body=data, headers=headers)
        answer = connection.getresponse()
        return Answer(answer.status, answer.reason, answer.headers, answer.read(limit))

    def cut() -> None:
        sock = connection.sock
        if sock is not None:
            try:  # the plain socket's shutdown: an SSL socket's would touch its TLS state
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    try:
        return within(exchange, seconds, stop, cut, name="http-post")
    finally:
        connection.close()
