"""Splitting long lists into batches: UID sets for IMAP commands, id lists for SQL IN (...),
chunks of mail cut by count and bytes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
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


def sized_chunks(items: Sequence[T], sizes: Mapping[T, int], count: int,
                 max_bytes: int) -> Iterator[list[T]]:
    """Yield consecutive slices of items, each of at most count elements whose sizes add up to
    at most max_bytes; an item larger than max_bytes is a slice of its own."""
    chunk: list[T] = []
    total = 0
    for item in items:
        size = sizes[item]
        if chunk and (len(chunk) >= count or total + size > max_bytes):
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += size
    if chunk:
        yield chunk
