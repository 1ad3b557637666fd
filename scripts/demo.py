"""A local demo: private Dovecot, demo directory and mails, a webhook receiver, poller.

    scripts/demo             one pass, the tickets, a technician's completion, the events,
                             and the `poller web` line that shows them in a browser
    scripts/demo --serve     the same set-up, then `poller serve` (IMAP IDLE) until Ctrl-C
    scripts/demo send FILE   drop a mail into the running --serve demo's mailbox

Settings and database stay in demo/ (ignored by git; $ATES_DEMO_DIR elsewhere), made anew by
each run, for a look with sqlite3 afterwards. Run through scripts/demo, which prepares the
virtual environment first.
"""

from __future__ import annotations

import email
import email.policy
import os
import shlex
import shutil
import sqlite3
import ssl
import sys
from email.utils import make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imapclient import IMAPClient  # noqa: E402

from poller.cli import main  # noqa: E402
from poller.config import load_settings  # noqa: E402
from testkit.dovecot import Dovecot  # noqa: E402
from testkit.support import PW  # noqa: E402
from testkit.webhook_receiver import Delivery, Receiver  # noqa: E402

DEMO = ROOT / "fixtures" / "demo"
PLACE = Path(os.environ.get("ATES_DEMO_DIR") or ROOT / "demo")
SECRET = "demo-webhook-secret"
WEB_PORT = 8025
OPEN_TICKETS = "SELECT number, organization, device, occurrences, udfs FROM open_tickets"


def run(config: Path, *args: str) -> int:
    print(f"\n$ poller {shlex.join(args)}", flush=True)
    return main(["--config", str(config), *args])


def show_event(delivery: Delivery) -> None:
    ticket = delivery.body.get("ticket") or {}
    print(f"webhook receiver: {delivery.event} {ticket.get('number', '-')} "
          f"({ticket.get('status', '-')}) by {delivery.body.get('by')}, signature "
          f"{'ok' if delivery.signed else 'WRONG'}, id {delivery.id}", flush=True)


def write_settings(server: Dovecot, account, receiver: Receiver) -> Path:
    PLACE.mkdir(parents=True, exist_ok=True)
    for name in ("settings.ini", "tickets.db", "tickets.db-wal", "tickets.db-shm"):
        (PLACE / name).unlink(missing_ok=True)
    config = PLACE / "settings.ini"
    # a copy of the private Dovecot's CA, so that the settings stay valid once it is gone
    # (`poller web` and the reading commands load them afterwards)
    cafile = PLACE / "imap-ca.crt"
    shutil.copyfile(server.cafile, cafile)
    config.write_text(
        f"[imap]\nhost = {server.host}\nport = {server.port}\nsecurity = starttls\n"
        f"cafile = {cafile}\nusername = {account.username}\n"
        f"password = {account.password}\n"
        f"[ates]\npassword = {PW}\nlocal_organization = Acme MSP\n"
        f"[database]\nurl = sqlite:///tickets.db\n"
        f"[schedule]\nidle = true\ninterval = 300\n"
        f"[webhook]\nurl = {receiver.url}\nsecret = {SECRET}\n"
        f"events = created, appended, completed\ninitial_wait = 2\nmax_wait = 30\n",
        encoding="utf-8")
    config.chmod(0o600)  # it holds passwords
    return config


def show_open_tickets() -> None:
    database = PLACE / "tickets.db"
    shown = database.relative_to(Path.cwd()) if database.is_relative_to(Path.cwd()) else database
    print(f"\nLook at what it made (kept in {PLACE}), e.g. the open tickets from a view:")
    print(f"$ sqlite3 -header -column {shown} '{OPEN_TICKETS}'", flush=True)
    connection = sqlite3.connect(database)
    try:
        cursor = connection.execute(OPEN_TICKETS)
        rows = [[("" if v is None else str(v)) for v in row] for row in cursor.fetchall()]
        names = [d[0] for d in cursor.description]
    finally:
        connection.close()
    widths = [max(len(n), *(len(r[i]) for r in rows)) for i, n in enumerate(names)]
    for line in [names, ["-" * w for w in widths], *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def show_web_line(config: Path) -> None:
    shown = config.relative_to(Path.cwd()) if config.is_relative_to(Path.cwd()) else config
    poller = Path(sys.executable).with_name("poller")
    poller = poller.relative_to(Path.cwd()) if poller.is_relative_to(Path.cwd()) else poller
    print("\nAnd in a browser, read-only (open tickets, one ticket, quarantine, undelivered "
          "events, charts):")
    print(f"$ {shlex.join([str(poller), '--config', str(shown), 'web', '--port', str(WEB_PORT)])}")
    print(f"  then open http://127.0.0.1:{WEB_PORT}/ (Ctrl-C stops it)", flush=True)


def demo(serve: bool) -> int:
    with Dovecot() as server, Receiver(SECRET, on_delivery=show_event) as receiver:
        account = server.account("alerts")
        mails = sorted(DEMO.glob("*.eml"))
        for path in mails:
            account.append("INBOX", path.read_bytes())
        print(f"Dovecot on {server.host}:{server.port}; {len(mails)} mails loaded into INBOX; "
              f"a webhook receiver on {receiver.url}")
        config = write_settings(server, account, receiver)
        for kind in ("organizations", "devices", "contacts"):
            run(config, "import", kind, str(DEMO / f"{kind}.csv"))
        if serve:
            folder = DEMO.relative_to(ROOT)
            print("\n`poller serve` watches INBOX with IMAP IDLE. In another terminal, drop a "
                  f"mail in:\n    scripts/demo send {folder}/03-agent-offline-ct-dc01.eml\n"
                  "and watch its ticket and its event appear here (then "
                  f"{folder}/04-resolved-agent-offline-ct-dc01.eml completes it). Ctrl-C ends "
                  "the demo.", flush=True)
            code = run(config, "serve")
        else:
            code = run(config, "once")
            run(config, "tickets")
            run(config, "messages")
            number = _open_numbers()[0]
            run(config, "ticket", "complete", number, "--note", "Disk cleaned up", "--by",
                "demo")
            run(config, "outbox")
            folders = {name: len(account.messages(name)) for name in account.folders()}
            print(f"\nIMAP folders and message counts: {folders}")
        show_open_tickets()
        show_web_line(config)
        return code


def _open_numbers() -> list[str]:
    connection = sqlite3.connect(PLACE / "tickets.db")
    try:
        return [row[0] for row in connection.execute("SELECT number FROM open_tickets")]
    finally:
        connection.close()


def send(path: Path) -> int:
    """Append a mail file to the watched folder of the running --serve demo."""
    if not (PLACE / "settings.ini").exists():
        print(f"no demo settings in {PLACE}: start `scripts/demo --serve` first", file=sys.stderr)
        return 2
    imap = load_settings(PLACE / "settings.ini").imap
    mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    # A new Message-ID: the same demo mail sent again is a new alert, not the same mail twice.
    del mail["Message-ID"]
    mail["Message-ID"] = make_msgid(domain="demo.example")
    client = IMAPClient(imap.host, port=imap.port, ssl=False, timeout=10)
    try:
        client.starttls(ssl.create_default_context(cafile=imap.cafile))
        client.login(imap.username, imap.password)
        client.append(imap.folder, mail.as_bytes())
    except BaseException:
        client.shutdown()
        raise
    client.logout()
    print(f"{path.name} is in {imap.folder} of {imap.host}:{imap.port}, with a new Message-ID; "
          "the serving demo picks it up at once (IMAP IDLE)")
    return 0


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments[:1] == ["send"] and len(arguments) == 2:
        raise SystemExit(send(Path(arguments[1])))
    if arguments not in ([], ["--serve"]):
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(demo(serve=arguments == ["--serve"]))
