"""Capped exponential back-off, the one wait between tries of a pass, of IDLE and of a
webhook event."""

from __future__ import annotations


def exponential(failures: int, initial: float, cap: float) -> float:
    """Return the seconds to wait after the FAILURES-th failure in a row (1 for the first):
    INITIAL, doubled after each further failure, at most CAP."""
    if failures < 1:
        return 0.0
    # 2 ** 64 is far past any cap; a larger exponent would only make a huge float
    return min(cap, initial * 2 ** min(failures - 1, 64))
