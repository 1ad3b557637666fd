"""Splitting long lists into batches: UID sets for IMAP commands, id lists for SQL IN (...),
chunks of mail cut by count and bytes; and halving a batch a server refused down to the items
it refuses."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
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


def refused_items(items: Sequence[T], attempt: Callable[[list[T]], str], *,
                  shared: bool = False) -> list[tuple[T, str]]:
    """Try ATTEMPT on all ITEMS, then on halves of what was refused, down to single items;
    return the items refused alone, each with the refusal ATTEMPT returned ('' = done).

    SHARED: when both halves of the first split are refused too, the refusal is taken as one
    that every item shares (a missing folder, a quota) and no more tries are made.
    """
    error = attempt(list(items))
    return _halves(list(items), error, attempt, shared) if error else []


def _halves(items: list[T], error: str, attempt: Callable[[list[T]], str],
            shared: bool) -> list[tuple[T, str]]:
    if len(items) == 1:
        return [(items[0], error)]
    halves = (items[:len(items) // 2], items[len(items) // 2:])
    errors = [attempt(half) for half in halves]
    if shared and all(errors):
        return [(item, error) for item in items]
    return [found for half, why in zip(halves, errors, strict=True) if why
            for found in _halves(half, why, attempt, False)]
