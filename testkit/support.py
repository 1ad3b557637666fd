"""Helpers shared by the integration tests: alert mails, settings files, running the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from poller.cli import main

PW = "zzZ3zZ/2Z1ZzzZZZ0zoZ9z=="
OAUTH2_SECRET = "Oauth2-Client-S3cret-4d1c"
REPO = Path(__file__).resolve().parent.parent


def token(pw: str = PW, **elements: str) -> str:
    """Return an ATES token; keyword names are element names, values 'source:value' for sourced."""
    lines = ["<Autotask>", '<ID name="acmemsp.com"/>', f'<PW name="{pw}"/>']
    for name, value in elements.items():
        if name == "TicketNumber":
            lines.append(f"<TicketNumber>{value}</TicketNumber>")
        elif ":" in value and name in ("CustomerID", "DeviceID", "DeviceGUID", "AlertID",
                                       "TicketID"):
            source, _, val = value.partition(":")
            lines.append(f'<{name} source="{source}" name="{val}"/>')
        else:
            lines.append(f'<{name} name="{value}"/>')
    lines.append("</Autotask>")
    return "\n".join(lines)


def alert_mail(subject: str = "Disk full on SRV1", body: str = "Disk C: is 99% full.",
               tok: str | None = None, message_id: str | None = None,
               attachments: tuple[tuple[str, bytes, str], ...] = (),
               date: datetime | None = datetime(2026, 11, 26, 10, 0, 0)) -> bytes:
    """Return the bytes of an alert mail with the token at the end of its text body.

    message_id None gives a new one, "" none at all; date None leaves the Date header out.
    """
    msg = EmailMessage()
    msg["From"] = "Kaseya VSA <vsa@client.example>"
    msg["To"] = "alerts@msp.example"
    msg["Subject"] = subject
    if date is not None:
        msg["Date"] = format_datetime(date.astimezone())
    if message_id != "":
        msg["Message-ID"] = message_id or make_msgid(domain="client.example")
    msg.set_content(f"{body}\n\n{tok if tok is not None else token(AlertID='Kaseya:1')}\n")
    for filename, content, content_type in attachments:
        maintype, _, subtype = content_type.partition("/")
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return bytes(msg)


def write_settings(tmp_path: Path, account, **sections: dict[str, str]) -> Path:
    """Write a settings.ini for a test account (None: a mailbox that is never connected to, for
    passes over a fake); sections override or add keys."""
    imap = {"host": "imap.invalid", "port": "143", "username": "alerts", "password": "unused"}
    if account is not None:
        imap = {"host": account.host, "port": str(account.port), "username": account.username,
                "password": account.password, "cafile": str(account.cafile)}
    values: dict[str, dict[str, str]] = {
        "imap": {**imap, "security": "none", "timeout": "10"},
        "ates": {"password": PW, "local_organization": "Acme MSP"},
        "database": {"url": f"sqlite:///{tmp_path}/tickets.db"},
    }
    for name, keys in sections.items():
        values.setdefault(name, {}).update(keys)
    lines = []
    for name, keys in values.items():
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {v}" for k, v in keys.items())
    path = tmp_path / "settings.ini"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)  # it holds passwords: readable by others would be warned about
    return path


def oauth2_settings(tmp_path: Path, account, server, *, auth: str = "xoauth2",
                    client_id: str | None = None, secret: str = OAUTH2_SECRET,
                    **sections: dict[str, str | None]) -> Path:
    """Write settings.ini for logging in to ACCOUNT of an OAuth2Dovecot SERVER with a token from
    its token server: [oauth2] provider generic, a new client of the account (or CLIENT_ID) and
    SECRET in a 0600 file; the IMAP password is a wrong one. SECTIONS override keys (None
    removes one)."""
    if client_id is None:
        client_id = server.tokens.add_client(account.username, secret=OAUTH2_SECRET)
    secret_file = tmp_path / "oauth2-secret"
    secret_file.write_text(f"{secret}\n", encoding="utf-8")
    secret_file.chmod(0o600)
    oauth2 = {"provider": "generic", "client_id": client_id,
              "client_secret_file": str(secret_file), "token_url": server.tokens.token_url,
              "scope": "https://mail.google.com/", "cafile": str(server.cafile),
              **sections.pop("oauth2", {})}
    imap = {"auth": auth, "security": "ssl", "port": str(account.ssl_port),
            "password": "not-the-password", **sections.pop("imap", {})}
    chosen = {name: {k: v for k, v in keys.items() if v is not None}
              for name, keys in {"imap": imap, "oauth2": oauth2, **sections}.items()}
    return write_settings(tmp_path, account, **chosen)


def poller(config: Path, *args: str) -> int:
    """Run the CLI in this process; return its exit code."""
    return main(["--config", str(config), *args])


def poller_json(config: Path, capsys, *args: str):
    """Run a CLI command with --json and return the parsed output."""
    capsys.readouterr()
    code = main(["--config", str(config), *args, "--json"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def run_subprocess(config: Path, *args: str, prelude: str = "", timeout: float = 60
                   ) -> subprocess.CompletedProcess[str]:
    """Run `poller` in a child Python, after executing prelude (e.g. installing a crash hook)."""
    argv = ["--config", str(config), *args]
    code = f"{prelude}\nfrom poller.cli import main\nraise SystemExit(main({argv!r}))"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


class TooSlow(Exception):
    """Raised by within() when its block outlasts the bound."""


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Raise TooSlow in the block when it runs longer than seconds (SIGALRM, main thread only).

    Python's regex engine and parsers check for signals as they go, so even a runaway match is
    cut short and fails the test instead of hanging it.
    """
    def expire(_signum, _frame):
        raise TooSlow(f"over {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
