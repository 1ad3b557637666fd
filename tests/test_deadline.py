"""poller.deadline: a call ends by its deadline or a stop request, whatever its peer does, and
a call cut there times out (or is stopped): never an error the cut itself caused."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from poller.deadline import Stopped, within


def _silent_peer():
    ours, theirs = socket.socketpair()
    return ours, theirs


@pytest.mark.parametrize("round_", range(20))
def test_a_read_cut_at_the_deadline_times_out(round_):
    ours, theirs = _silent_peer()
    try:
        def cut() -> None:
            ours.shutdown(socket.SHUT_RDWR)  # the read returns b'' at once: not an answer

        def read() -> bytes:
            data = ours.recv(10)
            if not data:
                raise ConnectionResetError("peer closed")
            return data

        started = time.monotonic()
        with pytest.raises(TimeoutError):
            within(read, 0.05, abort=cut)
        assert time.monotonic() - started < 2
    finally:
        ours.close()
        theirs.close()


def test_a_stop_request_ends_the_call_at_once():
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Stopped):
        within(lambda: time.sleep(30), 60, stop)
    assert time.monotonic() - started < 2


def test_a_result_or_an_error_within_the_deadline_is_the_calls():
    assert within(lambda: 42, 5) == 42
    with pytest.raises(ValueError, match="bad"):
        within(lambda: (_ for _ in ()).throw(ValueError("bad")), 5)
