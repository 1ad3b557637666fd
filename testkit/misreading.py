"""A mail reader that misbehaves on purpose, for tests of the reading helper.

Point the helper at it with ``Reader(misreading.read)`` (or, for the readers a pass starts
itself, ``poller.service.reader.READ = misreading.read``). A mail made with
``misread(raw, how)`` (a first header ``X-Misread: how``) makes the helper:

* ``spin``: run a regular expression that backtracks for ages, in C (a runaway pattern);
* ``hang``: wait for ever without using CPU (a lock nobody releases);
* ``crash``: die at once, as when the OOM killer or an operator kills it;
* ``locked``: take LOCK first, a lock a thread of the worker may be holding;
* ``bloat``: return a reading that takes 200 MB, more than the helper may take to pickle it
  (its memory is bounded), though not to make it;
* ``log``: log the raw Subject line as mail-parser does with a header it cannot decode
  (``Failed decoding header part: ...``), then read the mail as usual.

Any other mail is read as usual (poller.ates.reading.read).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
from datetime import datetime

from poller.ates.reading import Reading
from poller.ates.reading import read as real_read

LOCK = threading.Lock()


def misread(raw: bytes, how: str) -> bytes:
    """Return the mail marked to make the helper misbehave HOW."""
    return f"X-Misread: {how}\r\n".encode() + raw


def read(uid: int, raw: bytes, now: datetime) -> Reading:
    how = raw.split(b"\r\n", 1)[0].removeprefix(b"X-Misread: ") if raw.startswith(
        b"X-Misread: ") else b""
    if how == b"spin":
        re.match(r"(x+x+)+y", "x" * 64)
    elif how == b"hang":
        threading.Event().wait()
    elif how == b"crash":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == b"bloat":
        return Reading(None, None, "x" * (200 << 20), False, "bloated")
    elif how == b"log":
        lines = raw.split(b"\n\n", 1)[0].replace(b"\r\n", b"\n").split(b"\n")
        start = next(n for n, line in enumerate(lines) if line.startswith(b"Subject:"))
        end = next((n for n in range(start + 1, len(lines)) if lines[n][:1] not in b" \t"),
                   len(lines))
        logging.getLogger("mailparser.utils").error(  # the header as it is, folding and all
            "Failed decoding header part: %s", b"\n".join(lines[start:end]).decode(
                "utf-8", "replace"))
    elif how == b"locked":
        with LOCK:
            return real_read(uid, raw, now)
    return real_read(uid, raw, now)
