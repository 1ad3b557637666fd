"""Ticket numbers: TYYYYMMDD.NNNN, numbered per local day (as Autotask shows them), from
the ticket_sequence table."""

from __future__ import annotations

import functools
from datetime import datetime

from poller.store.engine import Engine


def next_ticket_number(db: Engine, now: datetime) -> str:
    """Return the next number of the day, TYYYYMMDD.NNNN (local date, as Autotask shows it)."""
    day = local_day(now)
    return _number(day, _take_number(db, day))


def _take_number(db: Engine, day: str) -> int:
    """Return the day's next number from the database (its row stays locked to others until
    the transaction ends)."""
    return db.sql("INSERT INTO ticket_sequence (day, last) VALUES (?, 1) ON CONFLICT (day) "
                  "DO UPDATE SET last = ticket_sequence.last + 1 RETURNING last",
                  (day,)).fetchall()[0][0]


def _number(day: str, last: int) -> str:
    return f"T{day}.{last:04d}"


class TicketNumbers:
    """The ticket numbers one transaction hands out: the first of a day is taken from the
    database, which keeps that day's row locked to every other writer until the transaction
    ends; the rest are counted here and the last is written by save, one statement per
    transaction instead of one per ticket."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}  # day → last number handed out
        self.saved: dict[str, int] = {}  # day → last number the database has

    def copy(self) -> TicketNumbers:
        numbers = TicketNumbers()
        numbers.last, numbers.saved = dict(self.last), dict(self.saved)
        return numbers

    def next(self, db: Engine, now: datetime) -> str:
        """Return the next number of now's day, TYYYYMMDD.NNNN."""
        day = local_day(now)
        if day in self.last:
            self.last[day] += 1
        else:
            self.last[day] = self.saved[day] = _take_number(db, day)
        return _number(day, self.last[day])

    def unused(self, now: datetime) -> None:
        """The number next handed out for now's day was not used: it is handed out again."""
        self.last[local_day(now)] -= 1

    def save(self, db: Engine) -> None:
        """Write the last number of each day handed out since the database's."""
        for day, last in self.last.items():
            if last != self.saved[day]:
                db.sql("UPDATE ticket_sequence SET last = ? WHERE day = ?", (last, day))
                self.saved[day] = last


@functools.lru_cache(maxsize=4)
def _local_day_of_minute(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60).strftime("%Y%m%d")


def local_day(now: datetime) -> str:
    """Return now's local date as YYYYMMDD (time zones move the date by whole minutes, so it
    is worked out once a minute: converting to local time looks the zone up every time)."""
    return _local_day_of_minute(int(now.timestamp()) // 60)
