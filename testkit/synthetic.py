"""Synthetic alert mails for the backlog benchmark: deterministic, about 2 KB each, a realistic mix.

Of every mail: ~10 % repeat the alert id of an earlier, still open alert (→ appended), ~5 % are
clears of an open alert (→ completed), ~1 % carry a broken token (→ quarantined), the rest are
new alerts (→ created). Independently, ~30 % have an HTML alternative and ~25 % are
quoted-printable. Tokens name the organization by Kaseya Customer ID (most), by contact e-mail,
by name, or by an unknown id (→ the local organization with a note).
"""

from __future__ import annotations

import binascii
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime
from html import escape

PW = "bench-Zz3zZ/2Z1ZzzZZZ0zoZ9z=="
ATES_ID = "acmemsp.com"
ORGANIZATIONS = 300  # Kaseya Customer ID 100 … 399
DEVICES = 3000  # Kaseya Device ID 10000 … 12999, ten per organization
START = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)

MONITORS = [
    ("Disk space low on {dev} (C:)", "Disk Space - C:", "{v:.1f} % used (threshold 90 %)"),
    ("CPU utilisation high on {dev}", "CPU Utilisation", "{v:.1f} % over 15 minutes (threshold 85 %)"),
    ("Memory pressure on {dev}", "Available Memory", "{v:.0f} MB free (threshold 512 MB)"),
    ("Service stopped on {dev}: Spooler", "Windows Service - Spooler", "state Stopped ({v:.0f} s)"),
    ("Backup job failed on {dev}", "Backup Job - Nightly", "exit code {v:.0f}"),
    ("Température élevée sur {dev}", "Capteur de température", "{v:.1f} °C (seuil ≥ 70 °C)"),
]
EVENTS = [
    "Event 7036: The Print Spooler service entered the stopped state.",
    "Event 2013: The C: disk is at or near capacity; you may need to delete some files.",
    "Event 1001: Windows Error Reporting — fault bucket 1234567890, type 5.",
    "Event 4625: An account failed to log on (logon type 3, status 0xC000006D).",
    "Event 6008: The previous system shutdown at 03:12:44 was unexpected.",
    "Agent check-in delayed by {n} s; retrying on the secondary endpoint.",
    "Threshold evaluated over {n} samples; {n2} exceeded the configured limit.",
]


@dataclass
class Backlog:
    """The generated mails and what a correct pass must make of them."""

    mails: list[bytes]
    expected: Counter[str] = field(default_factory=Counter)  # outcome → count

    @property
    def tickets(self) -> int:
        return self.expected["created"]

    @property
    def completed_tickets(self) -> int:
        return self.expected["completed"]

    @property
    def occurrences(self) -> int:
        return self.expected["created"] + self.expected["appended"]

    @property
    def average_size(self) -> float:
        return sum(map(len, self.mails)) / max(1, len(self.mails))


@dataclass
class _Alert:
    number: int
    subject: str
    monitor: int
    customer: int
    device: int
    how: str  # how the token names the organization: id | email | name | unknown


def token(alert: _Alert, broken: str | None = None) -> str:
    """Return the ATES token of an alert; broken names one way of getting it wrong."""
    pw = "not-the-configured-pw" if broken == "pw" else PW
    lines = ["<Autotask>", f'<ID name="{ATES_ID}"/>']
    if broken != "no-pw":
        lines.append(f'<PW name="{pw}"/>')
    if broken == "dtd":
        lines.insert(1, '<!DOCTYPE a [<!ENTITY e "boom">]>')
    if alert.how == "id":
        lines.append(f'<CustomerID source="Kaseya" name="{alert.customer}"/>')
    elif alert.how == "unknown":
        lines.append(f'<CustomerID source="Kaseya" name="9{alert.customer}"/>')
    elif alert.how == "email":
        lines.append(f'<Email name="ops@client{alert.customer}.example"/>')
    else:
        lines.append(f'<Customer name="Client {alert.customer}"/>')
    lines.append(f'<DeviceID source="Kaseya" name="{alert.device}"/>')
    lines.append(f'<AlertID source="Kaseya" name="KA-{alert.number:07d}"/>')
    if broken != "unclosed":
        lines.append("</Autotask>")
    return "\n".join(lines)


def _body(rng: random.Random, alert: _Alert, when: datetime, clear: bool) -> str:
    _, monitor, value = MONITORS[alert.monitor]
    state = "Cleared" if clear else rng.choice(("Warning", "Critical"))
    lines = [
        f"Monitoring alert {'cleared' if clear else 'raised'} by Kaseya VSA.",
        "",
        f"Machine:   SRV-{alert.device:05d}.client{alert.customer} (Windows Server 2019)",
        f"Group:     client{alert.customer}.servers",
        f"Monitor:   {monitor}",
        f"Severity:  {state}",
        "Value:     " + value.format(v=rng.uniform(1, 100)),
        f"Time:      {when:%Y-%m-%d %H:%M:%S} UTC",
        "",
        "Recent events on the machine:",
    ]
    for _ in range(rng.randint(3, 6)):
        lines.append(" - " + rng.choice(EVENTS).format(n=rng.randint(10, 999),
                                                        n2=rng.randint(1, 9)))
    lines += [
        "",
        "Please review the device and acknowledge the alarm in the console. This message was",
        "generated automatically by the monitoring service; replies are not read.",
        "",
        "",
    ]
    return "\n".join(lines)


def _part(text: str, subtype: str, qp: bool) -> str:
    if qp:
        body = binascii.b2a_qp(text.encode("utf-8")).decode("ascii")
    else:
        body = text
    cte = "quoted-printable" if qp else "8bit"
    return (f'Content-Type: text/{subtype}; charset="utf-8"\n'
            f"Content-Transfer-Encoding: {cte}\n\n{body}")


def _mail(rng: random.Random, seq: int, alert: _Alert, when: datetime, clear: bool,
          broken: str | None) -> bytes:
    host = f"vsa01.client{alert.customer}.example"
    stamp = format_datetime(when)
    subject = f"RESOLVED: {alert.subject}" if clear else alert.subject
    if not subject.isascii():
        subject = Header(subject, "utf-8").encode()
    head = (
        f"Received: from {host} ({host} [192.0.2.{alert.customer % 250 + 1}])\n"
        f"\tby mx1.msp.example (Postfix) with ESMTPS id {rng.getrandbits(40):010X}\n"
        f"\tfor <alerts@msp.example>; {stamp}\n"
        f"Received: from localhost (localhost [127.0.0.1]) by {host} with SMTP; {stamp}\n"
        f"From: Kaseya VSA <vsa@client{alert.customer}.example>\n"
        "To: alerts@msp.example\n"
        f"Subject: {subject}\n"
        f"Date: {stamp}\n"
        f"Message-ID: <{seq}.{rng.getrandbits(48):012x}@{host}>\n"
        "X-Mailer: Kaseya VSA 9.5.20\n"
        "MIME-Version: 1.0\n"
    )
    text = _body(rng, alert, when, clear) + token(alert, broken) + "\n"
    qp = rng.random() < 0.25
    if rng.random() < 0.30:
        markup = "".join(f"<p>{escape(line)}</p>" if line else "<br>"
                         for line in text.splitlines())
        boundary = f"=_alert_{rng.getrandbits(64):016x}"
        body = (f'Content-Type: multipart/alternative; boundary="{boundary}"\n\n'
                f"--{boundary}\n{_part(text, 'plain', qp)}\n"
                f"--{boundary}\n"
                f"{_part(f'<html><body>{markup}</body></html>', 'html', qp)}\n"
                f"--{boundary}--\n")
    else:
        body = _part(text, "plain", qp)
    return (head + body).replace("\n", "\r\n").encode("utf-8")


def generate(count: int, seed: int = 1) -> Backlog:
    """Return count mails in delivery order, the same for the same seed."""
    rng = random.Random(seed)
    backlog = Backlog(mails=[])
    open_alerts: list[_Alert] = []
    number = 0
    for seq in range(count):
        when = START + timedelta(seconds=seq * 3)
        roll = rng.random()
        if roll < 0.10 and open_alerts:
            alert, clear, outcome = rng.choice(open_alerts), False, "appended"
        elif roll < 0.15 and open_alerts:
            alert = open_alerts.pop(rng.randrange(len(open_alerts)))
            clear, outcome = True, "completed"
        else:
            number += 1
            customer = rng.randrange(100, 100 + ORGANIZATIONS)
            device = 10000 + (customer - 100) * 10 + rng.randrange(10)
            how = rng.choices(("id", "email", "name", "unknown"), (80, 10, 5, 5))[0]
            monitor = rng.randrange(len(MONITORS))
            subject = MONITORS[monitor][0].format(dev=f"SRV-{device:05d}")
            alert = _Alert(number, subject, monitor, customer, device, how)
            clear, outcome = False, "created"
        broken = None
        if outcome == "created" and rng.random() < 0.012:
            broken = rng.choice(("unclosed", "dtd", "pw", "no-pw"))
            outcome = "quarantined"
        elif outcome == "created":
            open_alerts.append(alert)
        backlog.mails.append(_mail(rng, seq, alert, when, clear, broken))
        backlog.expected[outcome] += 1
    return backlog
