"""The read-ahead helper: a backlog is read one chunk ahead in a helper process.

Reading (poller.ates.reading) is most of the work per mail and needs nothing from the store,
so while this process records and flags one chunk, the helper reads the next: the two halves
then run on two cores. The helper only ever reads; every decision, write and mailbox step stays
in the worker, in order, so exactly-once is unchanged. If the helper fails, the rest is read
here.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime

from poller.ates.reading import Reading, read

logger = logging.getLogger(__name__)

# Larger mail is read in this process: shipping it to the helper and back would cost more
# memory than the helper saves time.
HELPER_MAX_BYTES = 256 * 1024

Chunk = tuple[list[int], dict[int, bytes], dict[int, Reading]]


def read_chunk(raws: dict[int, bytes], now: datetime) -> dict[int, Reading]:
    """Read every mail of a chunk, keyed by UID."""
    return {uid: read(uid, raw, now) for uid, raw in raws.items()}


class Reader:
    """Reads fetched chunks in order; with helper=True one chunk ahead in a helper process."""

    def __init__(self, helper: bool):
        self._pool: ProcessPoolExecutor | None = None
        if helper:
            # fork is quick and shares the imported modules. It is safe here although the
            # worker may run other threads (signals, the pool's own): the helper only runs the
            # reading code, which takes no lock such a thread could hold at the fork (logging
            # re-creates its locks in the child).
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context(method),
                initializer=_helper_started)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def chunks(self, chunks: Iterable[list[int]], fetch: Callable[[list[int]], dict[int, bytes]],
               clock: Callable[[], datetime]) -> Iterator[Chunk]:
        """Fetch and read each chunk; yield (uids, raws, readings) in the order of chunks."""
        ahead: deque[tuple[list[int], dict[int, bytes], datetime, Future | None]] = deque()
        for uids in chunks:
            raws = fetch(uids)
            now = clock()
            ahead.append((uids, raws, now, self._submit(raws, now)))
            if self._pool is None or len(ahead) > 1:
                yield self._ready(*ahead.popleft())
        while ahead:
            yield self._ready(*ahead.popleft())

    def _submit(self, raws: dict[int, bytes], now: datetime) -> Future | None:
        if self._pool is None:
            return None
        small = {uid: raw for uid, raw in raws.items() if len(raw) <= HELPER_MAX_BYTES}
        try:
            return self._pool.submit(read_chunk, small, now)
        except RuntimeError as exc:  # the pool broke or was shut down
            self._give_up(exc)
            return None

    def _ready(self, uids: list[int], raws: dict[int, bytes], now: datetime,
               future: Future | None) -> Chunk:
        readings: dict[int, Reading] = {}
        if future is not None:
            try:
                readings = future.result()
            except Exception as exc:  # noqa: BLE001 - a failed helper must not cost a mail
                self._give_up(exc)
        missing = {uid: raw for uid, raw in raws.items() if uid not in readings}
        readings.update(read_chunk(missing, now))
        return uids, raws, readings

    def _give_up(self, exc: Exception) -> None:
        logger.warning("the reading helper failed (%s: %s); reading in this process",
                       type(exc).__name__, exc)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _helper_started() -> None:
    """In the helper: leave signals to the worker, and die with it (also on kill -9)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)  # a worker's wakeup fd would report the helper's signals as its own
    try:
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # prctl is Linux-only
