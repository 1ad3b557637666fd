"""Inside the reading helper: a process of its own that reads mail for the worker.

poller.service.reader starts it as a new interpreter with two sockets and a shared page. Over
the first the worker sends each chunk as one message, (batch, [(uid, size)], now, seconds),
followed by the mails' bytes, which the helper takes one mail at a time; over the second it
answers (READY, cpu) once, then ("readings", batch, {uid: Reading}, last) per chunk (more than
one when they stand for FLUSH_BYTES of mail; last on the final one), and ("log", level, logger,
text) for what the reading code logs. Before each mail the helper writes to the page how many
mails it has begun, the UID and its CPU time then: the worker tells from it which mail the
helper was reading when it ended, and a helper busy on the CPU from a hung one.

Each mail is read under a CPU limit (RLIMIT_CPU): when reading it takes more than `seconds`
the kernel ends the helper with SIGXCPU, also in the middle of C code such as a regular
expression. Its memory is bounded too (RLIMIT_DATA, READ_MEMORY beyond its start): a mail that
needs more is reported as such and quarantined. Signals that stop the service are the worker's
to handle: the helper ignores SIGINT and SIGTERM and ends when the worker closes its socket,
or, should the worker die, at the next mail.
"""

from __future__ import annotations

import importlib
import logging
import math
import mmap
import os
import pickle
import resource
import signal
import socket
import struct
from collections.abc import Callable

from poller.ates.reading import Reading

READY = "ready"
# The shared page: mails begun (count), the UID of the last one, the CPU seconds at its start.
PAGE = struct.Struct("=QQd")
_LENGTH = struct.Struct("!Q")
_IOV_MAX = 512
# What reading one mail may take beyond what the helper holds when it starts: allocations past
# it fail (MemoryError) and the mail is quarantined, not the helper or the worker killed by
# the kernel (a 28 MB text part of 4-byte characters takes 400 MiB to decode and line up).
READ_MEMORY = 320 * 1024 * 1024
# Readings are sent once they stand for this much mail, so large mail is not held in both
# processes at once (small mail goes back a chunk at a time).
FLUSH_BYTES = 4 * 1024 * 1024


def send(sock: socket.socket, message: object, *data: bytes) -> None:
    """Send a pickled message, then DATA as raw bytes (the message says how long each is)."""
    payload = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    views = [memoryview(_LENGTH.pack(len(payload))), memoryview(payload)]
    views += [memoryview(item) for item in data if item]
    first = 0
    while first < len(views):
        sent = sock.sendmsg(views[first:first + _IOV_MAX])
        while sent:
            if sent >= len(views[first]):
                sent -= len(views[first])
                first += 1
            else:
                views[first] = views[first][sent:]
                sent = 0


def receive(sock: socket.socket) -> object:
    """Return the next pickled message; raise EOFError when the other end has closed."""
    (length,) = _LENGTH.unpack(exactly(sock, _LENGTH.size))
    return pickle.loads(exactly(sock, length))  # noqa: S301 - from our own helper or worker


def exactly(sock: socket.socket, size: int) -> bytearray:
    """Return the next SIZE bytes; raise EOFError when the other end closes before."""
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        count = sock.recv_into(view[got:])
        if not count:
            raise EOFError("the other end closed the connection")
        got += count
    return buffer


class _Forward(logging.Handler):
    """Hands log records to the worker, which writes them in its own format."""

    def __init__(self, sock: socket.socket):
        super().__init__()
        self.sock = sock

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        send(self.sock, ("log", record.levelno, record.name, text))


def main(inbox: int, outbox: int, page: int, function: str) -> None:
    """Serve the worker: chunks come on socket fd INBOX, readings go out on OUTBOX, progress
    is written to the shared page (fd PAGE). Each mail is read by FUNCTION ('module:name',
    called as function(uid, raw, now) -> Reading, or function(uid, raw, now, rules) when the
    chunk comes with rules for mail without a token). Returns when the worker closes INBOX."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    source, sink = socket.socket(fileno=inbox), socket.socket(fileno=outbox)
    progress = mmap.mmap(page, PAGE.size)
    logging.root.handlers = [_Forward(sink)]
    logging.root.setLevel(logging.INFO)
    module, _, name = function.partition(":")
    read: Callable[..., Reading] = getattr(importlib.import_module(module), name)
    _limit_memory(READ_MEMORY)
    send(sink, (READY, _cpu()))
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    worker = os.getppid()
    begun = 0
    soft = None  # the CPU limit set last
    while True:
        try:
            batch, sizes, now, seconds, rules = receive(source)
        except EOFError:
            return
        readings: dict[int, Reading] = {}
        held = 0
        for uid, size in sizes:
            if os.getppid() != worker:
                return  # the worker is gone: nobody waits for the rest
            try:
                raw = bytes(exactly(source, size))
            except EOFError:
                return
            begun += 1
            cpu = _cpu()
            PAGE.pack_into(progress, 0, begun, uid, cpu)
            soft = _limit_cpu(cpu, seconds, hard, soft)
            # (rules only when there are any: a reader made for tests may not take them)
            readings[uid] = read(uid, raw, now, rules) if rules else read(uid, raw, now)
            del raw
            held += size
            if held >= FLUSH_BYTES:
                _send_readings(sink, batch, readings, False)
                readings, held = {}, 0
        _send_readings(sink, batch, readings, True)


# What can go wrong turning readings into bytes: a reading that does not pickle, or one too big
# to pickle within the helper's memory.
_UNSENDABLE = (pickle.PicklingError, TypeError, AttributeError, RecursionError, MemoryError)


def _send_readings(sink: socket.socket, batch: int, readings: dict[int, Reading],
                   last: bool) -> None:
    """Send the readings in one message; when that fails, one message per mail, each reading
    that cannot be sent replaced by its problem: the mail at fault is the one blamed (not the
    last one begun, as when the helper died of it), and the others keep their readings."""
    try:
        send(sink, ("readings", batch, readings, last))
        return
    except _UNSENDABLE:
        pass
    uids = list(readings)
    for n, uid in enumerate(uids):
        reading = _handed_over(readings.pop(uid))
        send(sink, ("readings", batch, {uid: reading}, last and n == len(uids) - 1))


def _handed_over(reading: Reading) -> Reading:
    """Return READING, or what stands for it when it cannot be pickled."""
    try:
        pickle.dumps(reading, pickle.HIGHEST_PROTOCOL)
    except MemoryError:
        problem = "handing its reading over needs more memory than reading one mail may take"
    except _UNSENDABLE as exc:
        problem = f"internal error while reading: {type(exc).__name__}"
    else:
        return reading
    fingerprint = reading.fingerprint
    del reading  # let go of it before anything else is made
    return Reading(None, None, problem, False, fingerprint)


def _limit_memory(more: int) -> None:
    """Let this process's data (heap and private mappings) grow by MORE bytes at most."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            data = next(int(line.split()[1]) * 1024 for line in status
                        if line.startswith("VmData:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return  # not Linux: the CPU limit still bounds each mail
    hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
    soft = data + more if hard == resource.RLIM_INFINITY else min(data + more, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def _cpu() -> float:
    """Return the CPU seconds this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _limit_cpu(used: float, seconds: int, hard: int, current: int | None) -> int:
    """Let this process use SECONDS more of CPU (whole seconds, rounded up) before SIGXCPU;
    return that soft limit. The limit is set only when it differs from CURRENT, the one set
    last: it changes once per CPU second, and setting it is a system call per mail."""
    soft = math.ceil(used) + seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    if soft != current:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    return soft
