"""Splitting long lists into batches: UID sets for IMAP commands, id lists for SQL IN (...)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

# Ids per SQL "IN (...)": below SQLite's old default limit of 999 bound parameters.
SQL_BATCH = 500
# UIDs per IMAP command: the command line stays far below servers' length limits.
UID_BATCH = 1000


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """Yield consecutive slices of items, each of at most size elements."""
    for start in range(0, len(items), size):
        yield list(items[start:start + size])
