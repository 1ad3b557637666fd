"""One pass at a time per mailbox, across processes: an flock on a lock file.

The kernel drops an flock when its holder exits, however it exits (kill -9 included), so a
lock is never left behind by a dead process; the holder's PID in the file is only a hint for
the message that tells who is running.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from poller.errors import StoreError

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.1


class PassLock:
    """An exclusive lock on PATH, held by at most one process at a time."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, wait: float = 0.0, stop: threading.Event | None = None) -> bool:
        """Take the lock, waiting up to WAIT seconds (less if STOP is set); return False if
        another process holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: a link planted where the lock file goes must not be followed (and its
            # target truncated) when the default lock sits in the shared temp folder
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise StoreError(f"[schedule] lock_file: cannot open {self.path}: {exc.strerror}") \
                from None
        stop = stop or threading.Event()
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if stop.is_set() or time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                stop.wait(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return True

    def release(self) -> None:
        """Let go of the lock (closing the file releases the flock)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def holder(self) -> str:
        """Return 'pid N' of the process that last took the lock, or '' if unknown."""
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return ""
        return f"pid {text}" if text.isdigit() else ""


@contextmanager
def pass_lock(path: str | os.PathLike[str], wait: float,
              stop: threading.Event | None = None) -> Iterator[PassLock | None]:
    """Hold the lock for the block; yield None (after logging who holds it) if it is taken."""
    lock = PassLock(path)
    if not lock.acquire(wait, stop):
        holder = lock.holder()
        logger.info("another pass is running on this mailbox%s (lock %s); not starting one",
                    f" ({holder})" if holder else "", lock.path)
        yield None
        return
    try:
        yield lock
    finally:
        lock.release()
