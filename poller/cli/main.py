"""Command line: `poller [--config PATH] COMMAND`: the parser, and the boundary where errors
become messages and exit codes (poller.cli.exits)."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from poller import __version__
from poller.cli.commands import COMMANDS, run
from poller.cli.exits import EXIT_BUG, EXIT_CONFIG, EXIT_OK, EXIT_UNAVAILABLE
from poller.cli.output import setup_logging
from poller.errors import ConfigError, ImportFileError, MailboxError, ReaderError, StoreError

logger = logging.getLogger("poller")


class TicketForm(argparse.Action):
    """`ticket NUMBER`, `ticket complete NUMBER` or `ticket note NUMBER TEXT…`: sets action
    (show, complete, note), number and text."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        words = list(values)  # type: ignore[call-overload]
        action = words.pop(0) if words[0] in ("complete", "note") else "show"
        if action == "note" and len(words) < 2:
            parser.error("ticket note: give the ticket number and the note's text")
        if action != "note" and len(words) != 1:
            parser.error(f"ticket {'complete ' if action == 'complete' else ''}takes one "
                         f"ticket number, got {' '.join(words) or 'none'}")
        namespace.action, namespace.number = action, words[0]
        namespace.text = " ".join(words[1:]) if action == "note" else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the command line's parser: for every command, or for COMMAND alone (most of
    what a cron pass spends before its pass is building the other commands' parsers)."""

    def wanted(name: str) -> bool:
        return command is None or name == command

    parser = argparse.ArgumentParser(
        prog="poller",
        description="Turn ATES-token alert mail in an IMAP mailbox into tickets.",
        epilog="Exit codes: 0 done, 1 mail left for next pass, 2 bad settings or input, "
               "3 mailbox/database unavailable, 4 unexpected error, 5 status: last good pass "
               "too old, 6 check: folders, 7 check: database or local files, 8 check: "
               "webhook.",
    )
    global_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    if wanted("once"):
        commands.add_parser("once", help="one pass over the mailbox (for cron)",
                            description="Fetch new mail once, make or update tickets, then flag or "
                                        "move each mail. When another pass runs on the same mailbox, "
                                        "wait up to [schedule] lock_wait seconds, then exit 0. "
                                        "Example: poller --config /etc/poller.ini once")

    if wanted("serve"):
        commands.add_parser("serve", help="run as a service: a pass every interval, and on new mail",
                            description="Run passes every [schedule] interval seconds and, with "
                                        "[schedule] idle = true, at once when IMAP IDLE announces new "
                                        "mail. SIGTERM/SIGINT: finish the mail in hand and exit 0; "
                                        "SIGHUP: reload the settings file. Example: poller --config "
                                        "/etc/ates-poller/settings.ini serve")

    if wanted("check"):
        chk = commands.add_parser("check", help="check settings, mailbox, folders and database",
                                  description="Print the effective settings (secrets masked), then "
                                              "connect, log in, check (and create) the folders and "
                                              "check that the database takes a write. The exit code "
                                              "names the first part that failed (3 IMAP, 6 folders, "
                                              "7 database or local files, 8 webhook). Example: "
                                              "poller check --webhook-ping")
        chk.add_argument("--webhook-ping", action="store_true",
                         help="also post a signed 'ping' event to [webhook] url")

    if wanted("status"):
        sts = commands.add_parser("status", help="health: last pass, mail waiting, quarantine",
                                  description="Show the last pass, mail waiting, the quarantine size "
                                              "and open tickets. Exits 5 when the last good pass is "
                                              "older than --max-age (for monitoring). Example: "
                                              "poller status --max-age 900")
        sts.add_argument("--max-age", type=int, metavar="SECONDS",
                         help="alert when the last good pass is older (default: [status] max_age)")
        sts.add_argument("--no-mailbox", dest="mailbox", action="store_false",
                         help="do not connect to the mailbox (database only)")
        sts.add_argument("--json", action="store_true", help="print JSON")

    if wanted("requeue"):
        rq = commands.add_parser("requeue", help="move quarantined mail back to be processed again",
                                 description="Move quarantined mail back to the watched folder, unread, "
                                             "so the next pass processes it again (after its cause is "
                                             "fixed). Example: poller requeue '<abc@mon.example>'")
        which = rq.add_mutually_exclusive_group(required=True)
        which.add_argument("--all", action="store_true", help="every mail in the quarantine")
        which.add_argument("message_ids", nargs="*", default=[], metavar="MESSAGE-ID",
                           help="Message-ID of a quarantined mail (with or without <>)")

    if wanted("import"):
        imp = commands.add_parser(
            "import", help="import organizations, devices or contacts from CSV",
            description="Import the directory from a CSV file as spreadsheets and RMMs export it "
                        "(UTF-8 with or without BOM, else Windows-1252; ',' ';' or tab, detected). "
                        "All rows or none; importing the same file twice changes nothing. Example: "
                        "poller import devices devices.csv --column 'Device Name=name' --column "
                        "'Customer ID=organization' --organization-by 'Kaseya Customer ID' --dry-run")
        imp.add_argument("kind", choices=("organizations", "devices", "contacts"))
        imp.add_argument("file", type=Path)
        imp.add_argument("--column", action="append", default=[], metavar="HEADER=FIELD",
                         help="read column HEADER as FIELD (name, organization, first_name, ..., or "
                              "a UDF label such as 'Kaseya Device ID'); with any --column, only the "
                              "columns mapped are read")
        imp.add_argument("--organization-by", metavar="UDF_LABEL",
                         help="the organization column holds values of this organization UDF (e.g. "
                              "'Kaseya Customer ID'), not names; organizations: match by it")
        imp.add_argument("--delimiter", choices=(",", ";", "tab"),
                         help="what separates the cells (default: detected)")
        imp.add_argument("--dry-run", action="store_true",
                         help="show what would be added and changed, write nothing")
        imp.add_argument("--json", action="store_true", help="print JSON")

    if wanted("tickets"):
        lst = commands.add_parser("tickets", help="list tickets",
                                  description="List tickets, with the queue, priority and mailbox "
                                              "they came with. Example: poller tickets --status New "
                                              "--queue 'Monitoring Alert'")
        lst.add_argument("--status", choices=("New", "Complete"))
        lst.add_argument("--queue", help="only tickets in this queue")
        lst.add_argument("--priority", help="only tickets of this priority")
        lst.add_argument("--json", action="store_true", help="print JSON instead of a table")

    if wanted("ticket"):
        one = commands.add_parser(
            "ticket", help="show one ticket; complete it or add a note by hand",
            usage="poller ticket NUMBER [--json]\n"
                  "       poller ticket complete NUMBER [--note TEXT] [--by NAME]\n"
                  "       poller ticket note NUMBER TEXT [--by NAME]",
            description="Show one ticket with its notes; or complete it (a resolution note, and a "
                        "'completed' event to the webhook, delivered at once); or add a note. "
                        "Completing a ticket that is Complete already changes nothing. Example: "
                        "poller ticket T20261127.0001 (and: poller ticket complete T20261127.0001 "
                        "--note 'Disk replaced'; poller ticket note T20261127.0001 'Called the "
                        "customer')")
        one.add_argument("words", nargs="+", action=TicketForm, metavar="NUMBER",
                         help="the ticket number, after 'complete' or 'note' (and the note's text)")
        one.add_argument("--json", action="store_true", help="show: print JSON")
        one.add_argument("--note", metavar="TEXT", help="complete: why, for the resolution note")
        one.add_argument("--by", metavar="NAME", default=None,
                         help="complete, note: who (default: your login name)")

    if wanted("outbox"):
        box = commands.add_parser(
            "outbox", help="list the ticket events for the webhook; retry or drop one",
            usage="poller outbox [--status STATUS] [--limit N] [--since WHEN] [--json]\n"
                  "       poller outbox retry ID | poller outbox retry --failed\n"
                  "       poller outbox drop ID",
            description="List the events of the outbox, newest first: pending (not tried yet), "
                        "failed (tried, retried later), rejected (refused [webhook] max_attempts "
                        "times, no longer tried), dropped (by an operator) or delivered. `retry ID` "
                        "(or `retry --failed`: every failed and rejected event) posts it again at "
                        "the next run; `drop ID` never posts it (kept as dropped). Example: poller "
                        "outbox --status rejected")
        box.add_argument("words", nargs="*", metavar="retry|drop ID", help=argparse.SUPPRESS)
        box.add_argument("--failed", action="store_true", help="retry: every failed and rejected event")
        box.add_argument("--status", choices=("pending", "delivered", "failed", "rejected", "dropped"))
        listing(box)

    if wanted("messages"):
        msgs = commands.add_parser("messages", help="show the processed-mail log",
                                   description="Show what happened to each mail, newest first. "
                                               "Example: poller messages --outcome quarantined")
        msgs.add_argument("--outcome", choices=("created", "appended", "completed", "noted",
                                                "expected", "skipped", "quarantined", "duplicate"))
        listing(msgs)

    if wanted("parse"):
        prs = commands.add_parser("parse", help="show what the worker would do with a mail file",
                                  description="Extract the token and show the decision for one .eml "
                                              "file, without changing the store or any mailbox. "
                                              "Example: poller parse alert.eml")
        prs.add_argument("file", type=Path)

    if wanted("copy-database"):
        cpy = commands.add_parser(
            "copy-database", help="copy the whole store into an empty database (either engine)",
            description="Copy everything of the configured database (directory, UDFs, tickets, "
                        "notes, attachment records, the processed-mail and pass logs, the outbox, "
                        "the ticket numbers) into an empty database, in one transaction, then "
                        "compare the row counts. A target that holds rows is refused (exit 2). "
                        "Pointing [database] url at the target then goes on where the source "
                        "stopped. Stop the workers first. Example: poller copy-database "
                        "postgresql://poller@db.example:5432/tickets")
        cpy.add_argument("target", metavar="TARGET_URL",
                         help="sqlite:///PATH or postgresql://USER@HOST:PORT/DBNAME (the password "
                              "from PGPASSWORD or ~/.pgpass)")

    if wanted("rules"):
        rls = commands.add_parser("rules", help="test the rules for alert mail without a token",
                                  usage="poller rules test FILE.eml [--json]",
                                  description="Show which rule of the [rules] file takes the mail "
                                              "(or, when none does, which pattern of the closest "
                                              "rule did not match), the fields it takes, and what "
                                              "the worker would do, without changing the store. "
                                              "Example: poller rules test ups-alert.eml")
        rls.add_argument("action", choices=("test",))
        rls.add_argument("file", type=Path)
        rls.add_argument("--json", action="store_true", help="print JSON")

    if wanted("web"):
        web = commands.add_parser(
            "web", help="a read-only web view: tickets, quarantine, events, charts",
            description="Serve a read-only web view of the database: open tickets, one ticket, the "
                        "quarantine, undelivered events, and charts of alert activity. Needs the "
                        "[web] extra. Listens on 127.0.0.1 unless --host names another address, "
                        "which needs [web] password_file. Example: poller web --port 8025")
        web.add_argument("--host", default="127.0.0.1", help="address to listen on (default: "
                                                             "127.0.0.1)")
        web.add_argument("--port", type=int, default=8025, help="port (default: 8025)")
    return parser


def global_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that come before the command."""
    parser.add_argument("--config", default=os.environ.get("POLLER_CONFIG", "settings.ini"),
                        help="settings file (default: $POLLER_CONFIG or ./settings.ini)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-vv also traces IMAP, without passwords)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")


class _Unclear(Exception):
    pass


class _FirstLook(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Unclear(message)


def command_named(argv: list[str] | None) -> str | None:
    """Return the command ARGV names, read with the options before it alone; None when it names
    no command or is not read so (the whole parser then says what is wrong)."""
    first = _FirstLook(prog="poller", add_help=False)
    global_options(first)
    first.add_argument("command", nargs="?")
    first.add_argument("rest", nargs=argparse.REMAINDER)
    try:
        known, unknown = first.parse_known_args(argv)
    except _Unclear:
        return None
    return known.command if known.command in COMMANDS and not unknown else None


def listing(parser: argparse.ArgumentParser) -> None:
    """Add the options of a listing: --limit, --since, --json."""
    parser.add_argument("--limit", type=int, default=50, metavar="N",
                        help="at most N rows, the newest (default: 50; 0: all)")
    parser.add_argument("--since", type=since, metavar="WHEN",
                        help="only rows from then on: an ISO date or time (UTC unless it says)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def since(text: str) -> datetime:
    """Return --since's moment, aware (UTC unless the text names a zone)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or time, e.g. "
                                         "2026-12-01 or 2026-12-01T08:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def undecodable(args: argparse.Namespace) -> str | None:
    """Return which text argument holds bytes that are not UTF-8 (Python keeps them as lone
    surrogates, which no database or terminal takes), shown escaped; None when all are text.
    Paths (--config, files) may hold any bytes and are not looked at."""
    for name, value in vars(args).items():
        for text in value if isinstance(value, list) else [value]:
            if name != "config" and isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    shown = text.encode("utf-8", "surrogateescape").decode("ascii",
                                                                          "backslashreplace")
                    return f"{'--' + name if name not in ('words', 'message_ids') else 'argument'} {shown!r}"
    return None


def console() -> NoReturn:
    """The `poller` program (pyproject's script, `python -m poller`): exit with main's code."""
    code = main()
    # The process ends here and the system frees its memory: sparing the interpreter's last
    # garbage collection, over every module loaded, is a fifth of an empty pass.
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code.

    Every file the program creates (database, WAL, lock, attachments) is its user's alone:
    the umask is 077 while it runs (restored on return, for callers in the same process). The
    metrics textfile is made readable on purpose (poller.service.metrics).
    """
    previous = os.umask(0o077)
    try:
        return _main(argv)
    finally:
        os.umask(previous)


def _main(argv: list[str] | None) -> int:
    args = build_parser(command_named(argv)).parse_args(argv)
    setup_logging(-1 if args.quiet else args.verbose, args.log_format)
    bad = undecodable(args)
    if bad:
        print(f"poller: {bad}: not valid UTF-8 text (bytes the terminal or the shell could not "
              "encode); type it again in UTF-8", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return run(args)  # loads the settings and the command's modules
    except ConfigError as exc:
        print(f"poller: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ImportFileError as exc:
        print(f"poller: import error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (MailboxError, ReaderError, StoreError) as exc:
        print(f"poller: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        print("poller: interrupted", file=sys.stderr)
        return EXIT_OK
    except Exception:  # noqa: BLE001 - the last line of defence: log it, exit 4
        logger.exception("unexpected error in poller %s; please report this with the log",
                         __version__)
        return EXIT_BUG
