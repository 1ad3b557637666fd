"""How long from an APPEND to the ticket, with `poller serve` and [schedule] idle = true.

Runs a private Dovecot (tests/dovecot.py), `poller serve` with a one-hour interval (so only
IDLE can start a pass), appends mails one at a time and times each until its ticket row
exists; then times SIGTERM to exit. Usage: python bench/idle_latency.py [MAILS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testkit.dovecot import Dovecot  # noqa: E402
from testkit.serving import Child, count_tickets, wait_until  # noqa: E402
from testkit.support import alert_mail, token, write_settings  # noqa: E402


def main() -> None:
    mails = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with Dovecot() as dovecot, tempfile.TemporaryDirectory() as tmp:
        account = dovecot.account()
        config = write_settings(Path(tmp), account, schedule={"interval": "3600", "idle": "true"})
        db = Path(tmp) / "tickets.db"
        with Child(config, "serve") as serve:
            serve.wait_for("waiting for new mail in 'INBOX' with IMAP IDLE")
            serve.wait_for("pass done")
            latencies = []
            client = account.client()
            for n in range(mails):
                raw = alert_mail(tok=token(AlertID=f"Kaseya:{n}"))
                client.append("INBOX", raw)
                appended = time.monotonic()
                wait_until(lambda n=n: count_tickets(db) == n + 1, 30, lambda: serve.log)
                latencies.append(time.monotonic() - appended)
                time.sleep(0.2)
            client.logout()
            started = time.monotonic()
            code = serve.stop()
            stop_seconds = time.monotonic() - started
    latencies.sort()
    print(f"mails: {mails}, APPEND -> ticket with IDLE (interval 3600 s):")
    print(f"  min {latencies[0]:.3f}s  median {statistics.median(latencies):.3f}s  "
          f"p95 {latencies[int(0.95 * (len(latencies) - 1))]:.3f}s  max {latencies[-1]:.3f}s")
    print(f"SIGTERM -> exit {code} in {stop_seconds:.2f}s")


if __name__ == "__main__":
    main()
