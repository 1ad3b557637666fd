"""Backlog benchmark: `poller once` on N alert mails against the bare-fetch floor, same run.

    python bench/backlog.py [--mails 10000] [--runs 5] [--store-size 0] [--profile FILE]
                            [--database sqlite|postgresql]

Starts a private Dovecot on 127.0.0.1 (tests/dovecot.py), APPENDs N synthetic mails
(bench/mails.py) to a master folder once, then for every round server-side COPYs them to a
fresh folder and measures, alternately:

* the floor: one imapclient connection that SEARCHes and FETCHes BODY.PEEK[] of every mail in
  chunks of [imap] fetch_chunk and does nothing else;
* `poller once` as a whole process, start to exit, with its own copy of the prepared database
  (directory plus --store-size tickets of history), then its peak RSS (wait4), then a second
  `poller once` with nothing new (the empty pass). For a backlog `poller once` reads mail in a
  helper process: peak RSS is that of the larger of the two (wait4 reports the maximum over a
  process and the children it reaped), and their sum is sampled as PSS;
* the floor of the empty pass: a fresh interpreter that imports imapclient, logs in, SELECTs
  the folder, SEARCHes and logs out (what any cron pass has to pay), against which the empty
  pass is given as a ratio.

After each poller run the result is checked (tickets = distinct alerts, every outcome as
generated, every mail flagged or quarantined) and the run fails loudly if it is wrong. The
first round is a warm-up and is not counted. Prints median and min–max of each measurement.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.report import Results, report  # noqa: E402
from bench.stores import closing_postgres, fresh_store, store_result  # noqa: E402
from testkit.dovecot import Dovecot, ImapAccount  # noqa: E402
from testkit.postgres import Postgres  # noqa: E402
from testkit.prefill import LOCAL, add_history, build_directory  # noqa: E402
from testkit.synthetic import ATES_ID, PW, Backlog, generate  # noqa: E402

MASTER = "Backlog"
KEYWORD = "$AtesProcessed"
CHUNK = 200


class BenchError(RuntimeError):
    """The benchmark could not run, or the worker's result was wrong."""


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dovecot = subprocess.run(["dovecot", "--version"], capture_output=True, text=True,
                             check=False).stdout.split()
    return (f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}, Dovecot {dovecot[0] if dovecot else '?'}")


def load(account: ImapAccount, mails: list[bytes]) -> float:
    """APPEND every mail to the master folder over one connection; return the seconds taken."""
    client = account.client()
    started = time.perf_counter()
    try:
        client.create_folder(MASTER)
        if b"MULTIAPPEND" in client.capabilities():
            for start in range(0, len(mails), 500):
                client.multiappend(MASTER, mails[start:start + 500])
        else:
            for raw in mails:
                client.append(MASTER, raw)
        count = client.folder_status(MASTER, [b"MESSAGES"])[b"MESSAGES"]
    finally:
        client.logout()
    if count != len(mails):
        raise BenchError(f"loaded {count} of {len(mails)} mails")
    return time.perf_counter() - started


def copy_folder(account: ImapAccount, folder: str) -> None:
    """Give folder a fresh, unflagged copy of the master folder (server-side COPY)."""
    client = account.client()
    try:
        client.create_folder(folder)
        client.select_folder(MASTER, readonly=True)
        client.copy("1:*", folder)
    finally:
        client.logout()


def drop_folders(account: ImapAccount, *folders: str) -> None:
    client = account.client()
    try:
        for folder in folders:
            if client.folder_exists(folder):
                client.delete_folder(folder)
    finally:
        client.logout()


def floor_pass(account: ImapAccount, folder: str, expected: int) -> float:
    """SEARCH and FETCH BODY.PEEK[] of every mail in chunks, nothing else; return mails/s."""
    started = time.perf_counter()
    client = IMAPClient(account.host, port=account.port, ssl=False, timeout=60)
    client.login(account.username, account.password)
    client.select_folder(folder)
    uids = sorted(client.search("UNSEEN NOT DELETED"))
    fetched = 0
    for start in range(0, len(uids), CHUNK):
        data = client.fetch(uids[start:start + CHUNK], [b"BODY.PEEK[]"])
        fetched += sum(1 for item in data.values() if item.get(b"BODY[]"))
    client.logout()
    seconds = time.perf_counter() - started
    if fetched != expected:
        raise BenchError(f"floor pass fetched {fetched} of {expected} mails")
    return fetched / seconds


def login_floor(account: ImapAccount, folder: str, log: Path, timeout: float) -> float:
    """Time a fresh interpreter's bare login + select + search + logout; return seconds."""
    return launch([sys.executable, str(Path(__file__).with_name("login_floor.py")), account.host,
                   str(account.port), account.username, account.password, folder], log,
                  timeout).seconds


def write_settings(path: Path, account: ImapAccount, folder: str, url: str) -> Path:
    path.write_text(
        "[imap]\n"
        f"host = {account.host}\nport = {account.port}\nsecurity = none\n"
        f"username = {account.username}\npassword = {account.password}\n"
        f"folder = {folder}\nfetch_chunk = {CHUNK}\n"
        "[mailbox]\n"
        f"keyword = {KEYWORD}\nquarantine_folder = {folder}-Quarantine\n"
        "[ates]\n"
        f"password = {PW}\nid = {ATES_ID}\nlocal_organization = {LOCAL}\n"
        "[database]\n"
        f"url = {url}\n",
        encoding="utf-8",
    )
    return path


def poller_command() -> list[str]:
    script = Path(sys.executable).with_name("poller")
    return [str(script)] if script.exists() else [sys.executable, "-m", "poller"]


# Linux carries a process's peak RSS across exec, and a child forked from this process starts
# with this process's (which holds the whole backlog): `poller once` is forked by
# bench/launcher.py instead.
LAUNCHER = Path(__file__).with_name("launcher.py")


@dataclass
class Run:
    seconds: float
    rss_mib: float  # peak RSS of the worker or its reading helper, whichever is larger
    pss_mib: float  # peak of the two together, shared pages counted once (sampled)
    cpu: float  # the worker's own CPU seconds


def run_poller(config: Path, log: Path, timeout: float, wrapper: list[str] | None = None) -> Run:
    """Run `poller once` as a child process and measure it."""
    return launch([*(wrapper or poller_command()), "--config", str(config), "once"], log, timeout)


def launch(command: list[str], log: Path, timeout: float) -> Run:
    """Run COMMAND as a child of bench/launcher.py and measure it; raise BenchError unless it
    exits 0 within TIMEOUT seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLLER_")}
    launcher = subprocess.Popen([sys.executable, str(LAUNCHER), str(log), *command],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env,
                                start_new_session=True)
    try:
        out, _ = launcher.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
        raise BenchError(f"{command[0]} took more than {timeout:.0f} s; see {log}") from None
    if launcher.returncode != 0:
        raise BenchError(f"the launcher failed ({launcher.returncode}); see {log}")
    report = json.loads(out)
    if report["code"] != 0:
        raise BenchError(f"{command[0]} exited with {report['code']}; see {log}")
    return Run(report["seconds"], report["maxrss_kib"] / 1024, report["pss_kib"] / 1024,
               report["cpu"])


def check(account: ImapAccount, folder: str, url: str, history: int, backlog: Backlog) -> None:
    """Raise BenchError unless the store and the mailbox hold exactly what the mails call for."""
    outcomes, (tickets, complete, occurrences), pending = store_result(url, folder, history)
    problems = []
    if outcomes != dict(backlog.expected):
        problems.append(f"outcomes {outcomes} != expected {dict(backlog.expected)}")
    if (tickets, complete, occurrences) != (backlog.tickets, backlog.completed_tickets,
                                            backlog.occurrences):
        problems.append(f"tickets/complete/occurrences {(tickets, complete, occurrences)} != "
                        f"{(backlog.tickets, backlog.completed_tickets, backlog.occurrences)}")
    if pending:
        problems.append(f"{pending} mailbox steps not done")
    client = account.client()
    try:
        client.select_folder(folder, readonly=True)
        kept = len(client.search("ALL"))
        unflagged = len(client.search(f"NOT KEYWORD {KEYWORD}")) + len(client.search("UNSEEN"))
        quarantine = client.folder_status(f"{folder}-Quarantine", [b"MESSAGES"])[b"MESSAGES"]
    finally:
        client.logout()
    if kept != len(backlog.mails) - backlog.expected["quarantined"] or unflagged:
        problems.append(f"{folder}: {kept} mails left, {unflagged} not flagged")
    if quarantine != backlog.expected["quarantined"]:
        problems.append(f"quarantine holds {quarantine}, expected "
                        f"{backlog.expected['quarantined']}")
    if problems:
        raise BenchError("wrong result: " + "; ".join(problems))


def sqlite_rate(account: ImapAccount, folder: str, template: Path, work: Path, log: Path,
                timeout: float, history: int, backlog: Backlog) -> float:
    """Run the backlog once on a fresh SQLite copy of the template; return its mails/s."""
    copy_folder(account, folder)
    db = fresh_store(template, work, None)
    config = write_settings(work / "settings-sqlite.ini", account, folder, db)
    run = run_poller(config, log, timeout)
    check(account, folder, db, history, backlog)
    drop_folders(account, folder, f"{folder}-Quarantine")
    return len(backlog.mails) / run.seconds


def prepare_database(work: Path, store_size: int, seed: int) -> tuple[Path, int, float]:
    """Build the template database; return (path, highest history ticket id, seconds)."""
    started = time.perf_counter()
    template = work / "template.db"
    build_directory(template, work)
    add_history(template, store_size, seed)
    con = sqlite3.connect(template)
    history = con.execute("SELECT COALESCE(MAX(id), 0) FROM ticket").fetchone()[0]
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return template, history, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=10_000, help="backlog size (default 10000)")
    parser.add_argument("--runs", type=int, default=5, help="measured rounds (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted rounds first (default 1)")
    parser.add_argument("--store-size", type=int, default=0,
                        help="tickets of history (with UDF values and notes) pre-filled")
    parser.add_argument("--seed", type=int, default=1, help="mail generator seed (default 1)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per poller run")
    parser.add_argument("--profile", type=Path,
                        help="after the rounds, profile one more poller run into this file: "
                             "py-spy collapsed stacks for .folded, else pyinstrument (.html or "
                             "text); pip install -e '.[bench]' brings both")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the store: an SQLite file (default), or PostgreSQL on 127.0.0.1 "
                             "(a private server the benchmark starts)")
    parser.add_argument("--compare-sqlite", action="store_true",
                        help="with --database postgresql: each round also runs the backlog on "
                             "SQLite, and the summary gives PostgreSQL's share of it")
    args = parser.parse_args(argv)
    if args.compare_sqlite and args.database != "postgresql":
        parser.error("--compare-sqlite goes with --database postgresql")

    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}", flush=True)
    # as an install does: with PYTHONDONTWRITEBYTECODE set, each run would compile every module
    compileall.compile_dir(REPO / "poller", quiet=1)
    started = time.perf_counter()
    backlog = generate(args.mails, args.seed)
    print(f"generated {len(backlog.mails)} mails ({backlog.average_size / 1024:.2f} KiB average, "
          f"{dict(backlog.expected)}) in {time.perf_counter() - started:.1f} s", flush=True)
    results = Results()
    postgres = Postgres() if args.database == "postgresql" else None
    with tempfile.TemporaryDirectory(prefix="ates-bench-") as tmp, Dovecot() as server, \
            closing_postgres(postgres):
        work = Path(tmp)
        account = server.account()
        seconds = load(account, backlog.mails)
        print(f"loaded with APPEND in {seconds:.1f} s ({len(backlog.mails) / seconds:,.0f} "
              "mails/s)", flush=True)
        template, history, seconds = prepare_database(work, args.store_size, args.seed)
        print(f"database: directory + {history:,} tickets of history, built in {seconds:.1f} s",
              flush=True)
        log = work / "poller.log"
        for round_no in range(args.warmup + args.runs):
            counted = round_no >= args.warmup
            floor_folder, folder = f"Floor{round_no}", f"Run{round_no}"
            copy_folder(account, floor_folder)
            floor = floor_pass(account, floor_folder, len(backlog.mails))
            drop_folders(account, floor_folder)

            copy_folder(account, folder)
            db = fresh_store(template, work, postgres)
            config = write_settings(work / "settings.ini", account, folder, db)
            run = run_poller(config, log, args.timeout)
            rate = len(backlog.mails) / run.seconds
            empty = run_poller(config, log, args.timeout).seconds
            login = login_floor(account, folder, log, args.timeout)
            check(account, folder, db, history, backlog)
            drop_folders(account, folder, f"{folder}-Quarantine")
            compared = ""
            if args.compare_sqlite:
                lite = sqlite_rate(account, f"Lite{round_no}", template, work, log, args.timeout,
                                   history, backlog)
                compared = f", SQLite {lite:,.0f} mails/s (PostgreSQL {rate / lite:.0%} of it)"
                if counted:
                    results.sqlite.append(lite)
            print(f"{'round' if counted else 'warm-up'} {round_no}: floor {floor:,.0f} mails/s, "
                  f"poller {rate:,.0f} mails/s ({run.seconds:.2f} s, {run.cpu:.2f} s CPU, "
                  f"{rate / floor:.1%} of floor), peak RSS {run.rss_mib:.1f} MiB (both processes "
                  f"{run.pss_mib:.1f} MiB PSS), empty pass {empty:.3f} s ({empty / login:.2f}× "
                  f"a bare login, {login:.3f} s){compared}; result ok", flush=True)
            if counted:
                results.floor.append(floor)
                results.poller.append(rate)
                results.rss_mib.append(run.rss_mib)
                results.pss_mib.append(run.pss_mib)
                results.empty_s.append(empty)
                results.login_s.append(login)

        if args.profile:
            folder = "Profile"
            copy_folder(account, folder)
            db = fresh_store(template, work, postgres)
            config = write_settings(work / "settings.ini", account, folder, db)
            spy = Path(sys.executable).with_name("py-spy")
            if args.profile.suffix == ".folded" and spy.exists():
                # py-spy samples from outside, so the numbers are not skewed by the profiler.
                wrapper = [str(spy), "record", "-r", "250", "-f", "raw", "--subprocesses",
                           "-o", str(args.profile.resolve()), "--", *poller_command()]
            else:
                renderer = "html" if args.profile.suffix == ".html" else "text"
                wrapper = [sys.executable, "-m", "pyinstrument", "-r", renderer, "-o",
                           str(args.profile.resolve()), "-m", "poller"]
            seconds = run_poller(config, log, args.timeout, wrapper).seconds
            check(account, folder, db, history, backlog)
            print(f"profile of one poller run ({seconds:.2f} s while profiled) in {args.profile}",
                  flush=True)

    if results.poller:
        report(results, args, len(backlog.mails), dict(backlog.expected), history, machine())
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BenchError as exc:
        print(f"backlog: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
