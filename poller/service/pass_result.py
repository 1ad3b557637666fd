"""What a pass did: counts by outcome, mailbox steps left for the next pass, timing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from poller.ates.outcomes import Outcome


@dataclass
class PassResult:
    """What one pass did: counts by outcome, mailbox steps left for the next pass, timing.

    pending counts mailbox steps the server refused for the first time (they are tried again
    next pass); failing those it refused again. interrupted is True when a stop request ended
    the pass before every mail was looked at. lost keeps, across the reconnects of one pass, the
    UIDs whose FETCH lost the connection (with the errors of fetching each alone).
    """

    counts: Counter[str] = field(default_factory=Counter)
    pending: int = 0
    failing: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    lost: dict[int, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{name}={self.counts[name]}" for name in Outcome if self.counts[name]]
        return " ".join(parts) or "nothing new"

    def decided(self) -> int:
        """Return the number of mails decided so far."""
        return sum(self.counts.values())
