#!/usr/bin/env python3
"""Bounds on hostile mail: size limit, memory, time. Prints one table per part.

    python bench/bounds.py            # everything (about a minute)
    python bench/bounds.py --part time

Parts:

* size: a mail just over [limits] max_message_bytes is quarantined after reading only its
  RFC822.SIZE; a byte-counting proxy between the worker and a private Dovecot shows how
  much crossed the wire.
* memory: a 25 MB mail with attachments, processed in a fresh child process, (a) through
  the extraction path and (b) through a whole pass against Dovecot (the worker, and the
  helper that reads the mail); reported is the peak RSS growth (VmHWM minus the RSS before the
  mail was read) over the mail's size. The target is under 4x.
* time: extraction time of mail built to be slow: 10,000 MIME parts, 1 MB header lines,
  deep multipart nesting, unclosed tags by the hundred thousand; and of every XML attack.
* chunks: 40 mails of 5 MB (3 attachments each) in one `poller once` against Dovecot, forked
  from bench/launcher.py: peak RSS of the worker or its reading helper (whichever is larger),
  their summed PSS, and the time. Memory is bounded by [limits] max_fetch_bytes (64 MB), not by
  the mail count; the goal is under 300 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from poller.ates.alert import read_alert  # noqa: E402
from poller.errors import MessageError  # noqa: E402
from poller.mail.message import parse_message  # noqa: E402

PW = "zzZ3zZ/2Z1ZzzZZZ0zoZ9z=="
TOKEN = f'<Autotask><ID name="acmemsp.com"/><PW name="{PW}"/><AlertID source="K" name="1"/></Autotask>'
HEAD = b"From: vsa@client.example\r\nSubject: bench\r\nMessage-ID: <b1@client.example>\r\n"
MB = 1_000_000


# ---------------------------------------------------------------- mails


def big_mail(size: int = 25 * MB) -> bytes:
    """A mail of about `size` bytes: alert text with a token, and three binary attachments."""
    msg = EmailMessage()
    msg["From"], msg["Subject"], msg["Message-ID"] = "vsa@client.example", "big", "<big@x>"
    msg.set_content(f"Backup report attached.\n\n{TOKEN}\n")
    each = int(size * 3 / 4 / 3)  # base64 grows the bytes by 4/3
    for n, kind in enumerate(("pdf", "zip", "octet-stream")):
        msg.add_attachment(os.urandom(each), maintype="application", subtype=kind,
                           filename=f"report{n}.{kind[:3]}")
    return bytes(msg)


def many_parts(count: int, attachment: bool = False) -> bytes:
    part = (b"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment;"
            b" filename=f%d.bin\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQ==\r\n"
            if attachment else b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n")
    body = b"".join(part % i for i in range(count))
    return (HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + body
            + b"--b\r\nContent-Type: text/plain\r\n\r\n" + TOKEN.encode() + b"\r\n--b--\r\n")


def nested(depth: int) -> bytes:
    raw = b"Content-Type: text/plain\r\n\r\n" + TOKEN.encode() + b"\r\n"
    for i in range(depth):
        raw = (b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
               + raw + b"--b%d--\r\n" % i)
    return HEAD + raw


def shapes() -> dict[str, bytes]:
    html = HEAD + b"Content-Type: text/html\r\n\r\n"
    return {
        "10,000 text parts": many_parts(10_000),
        "10,000 attachments": many_parts(10_000, attachment=True),
        "1 MB Subject line": HEAD.replace(b"bench", b"x" * MB) + b"\r\n" + TOKEN.encode(),
        "1 MB folded Subject": HEAD.replace(b"bench", b"x\r\n " * (MB // 4)) + b"\r\n" + TOKEN.encode(),
        "1 MB X- header line": HEAD + b"X-Long: " + b"a" * MB + b"\r\n\r\n" + TOKEN.encode(),
        "1 MB To: address list": HEAD + b"To: " + b"a@b.example, " * (MB // 13) + b"\r\n\r\n"
                                 + TOKEN.encode(),
        "10,000 header fields": HEAD + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))
                                + b"\r\n" + TOKEN.encode(),
        "nested 100 deep": nested(100),
        "nested 1,000 deep": nested(1_000),
        "nested 10,000 deep": nested(10_000),
        "100k unclosed <Autotask": HEAD + b"\r\n" + b"<autotask " * 100_000 + b"</autotask>",
        "100k <Autotask> never closed": HEAD + b"\r\n" + b"<autotask>" * 100_000,
        "HTML: 100k unclosed <style": html + b"<style " * 100_000 + TOKEN.encode(),
        "HTML: 1M tags": html + b"<b>" * MB + TOKEN.encode(),
        "token: 20k unclosed elements": HEAD + b"\r\n<Autotask><PW name='x'/>" + b"<a>" * 20_000
                                        + b"</Autotask>",
        "25 MB of text body": HEAD + b"\r\n" + b"All quiet on SRV01.\r\n" * (25 * MB // 21)
                              + TOKEN.encode(),
    }


# ---------------------------------------------------------------- measurements


def extract(raw: bytes) -> str:
    try:
        alert = read_alert(parse_message(raw), datetime.now(UTC))
    except MessageError as exc:
        return f"{type(exc).__name__}: {str(exc)[:60]}"
    return f"alert ({len(alert.message.attachments)} attachments)"


def timed(raw: bytes) -> tuple[float, str]:
    started = time.perf_counter()
    result = extract(raw)
    return time.perf_counter() - started, result


def _status(field: str, pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def rss() -> int:
    return _status("VmRSS")


def peak() -> int:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork+exec,
    # so a child started by a parent that held the 25 MB mail would report the parent's peak.
    return _status("VmHWM")


def child_extract(path: str) -> None:
    """In a fresh process: read the mail, extract; print the RSS growth as JSON."""
    before = rss()
    raw = Path(path).read_bytes()
    result = extract(raw)
    print(json.dumps({"growth": peak() - before, "result": result}))


def child_pass(config: str) -> None:
    """In a fresh process: one whole pass (connect, fetch, decide, store, flag); the growth of
    the worker and of its reading helper (from its RSS once it has read a small mail)."""
    from poller.config import load_settings
    from poller.imap.mailbox import Mailbox
    from poller.service.pass_config import PassConfig
    from poller.service.passes import open_store
    from poller.service.reader import Reader
    from poller.service.worker import Worker

    settings = load_settings(config)
    store = open_store(settings)
    small = HEAD + b"\r\n" + TOKEN.encode()
    with Reader() as reader:
        list(reader.chunks([[0]], {0: len(small)}, lambda uids: {0: small},
                           lambda: datetime.now(UTC), budget=MB, seconds=10))
        helper = reader._helper.process.pid  # the bench looks at its memory
        helper_before = _status("VmRSS", helper)
        with Mailbox(settings.imap) as mailbox:
            before = rss()
            result = Worker(PassConfig.of(settings), mailbox, store, reader=reader).run_pass()
        helper_growth = _status("VmHWM", helper) - helper_before
    print(json.dumps({"growth": peak() - before, "helper_growth": helper_growth,
                      "result": result.summary()}))


def in_child(*args: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                         check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return json.loads(out.stdout.strip().splitlines()[-1])


def dovecot_account():
    from testkit.dovecot import Dovecot
    server = Dovecot().start()
    return server, server.account()


def settings_file(folder: Path, account, **extra: str) -> Path:
    from testkit.support import write_settings
    sections = {"limits": extra} if extra else {}
    return write_settings(folder, account, **sections)


# ---------------------------------------------------------------- parts


def part_size(work: Path) -> None:
    from testkit.counting_proxy import CountingProxy
    from testkit.support import poller, write_settings
    server, account = dovecot_account()
    try:
        limit = 30 * 1024 * 1024
        raw = big_mail(limit + MB)
        account.append("INBOX", raw)
        with CountingProxy(account.host, account.port) as proxy:
            config = write_settings(work, account, imap={"port": str(proxy.port)})
            started = time.perf_counter()
            code = poller(config, "once")
            seconds = time.perf_counter() - started
        place = "Quarantine" if account.messages("Quarantine") else "INBOX"
    finally:
        server.close()
    print("\n## size limit (30 MB default)\n")
    print("| mail | bytes from server | pass | exit | mail now in |\n|---|---|---|---|---|")
    print(f"| {len(raw) / MB:.1f} MB | {proxy.from_server:,} | {seconds:.2f} s | {code} | {place} |")


def part_memory(work: Path) -> None:
    raw = big_mail()
    path = work / "big.eml"
    path.write_bytes(raw)
    rows = [("extraction", in_child("--child-extract", str(path)))]
    server, account = dovecot_account()
    try:
        account.append("INBOX", raw)
        config = settings_file(work, account)
        row = in_child("--child-pass", str(config))
        rows += [("whole pass (fetch, parse, store, flag): worker", row),
                 ("whole pass: its reading helper", {**row, "growth": row["helper_growth"]})]
    finally:
        server.close()
    print(f"\n## memory: {len(raw) / MB:.1f} MB mail with 3 attachments\n")
    print("| path | peak RSS growth | x mail size | result |\n|---|---|---|---|")
    for name, row in rows:
        growth = int(row["growth"])
        print(f"| {name} | {growth / MB:.1f} MB | {growth / len(raw):.2f} | {row['result']} |")


def part_pass(work: Path) -> None:
    from testkit.support import poller
    print("\n## time: whole pass (`poller once`, one mail) against Dovecot\n")
    print("| mail | seconds | outcome |\n|---|---|---|")
    server, _ = dovecot_account()
    try:
        for name, raw in shapes().items():
            if not name.startswith(("10,000", "1 MB To", "nested 10,000", "25 MB")):
                continue
            account = server.account()
            account.append("INBOX", raw)
            folder = work / f"pass{account.username}"
            folder.mkdir()
            config = settings_file(folder, account)
            started = time.perf_counter()
            code = poller(config, "once")
            seconds = time.perf_counter() - started
            place = ("Quarantine" if account.messages("Quarantine") else
                     "INBOX, flagged" if b"\\Seen" in account.messages("INBOX")[0][1] else "INBOX")
            print(f"| {name} | {seconds:.2f} | exit {code}, mail in {place} |")
    finally:
        server.close()


def part_time(work: Path) -> None:
    print("\n## time: extraction of mail built to be slow\n")
    print("| mail | size | seconds | result |\n|---|---|---|---|")
    for name, raw in shapes().items():
        seconds, result = timed(raw)
        print(f"| {name} | {len(raw) / MB:.2f} MB | {seconds:.3f} | {result} |")
    print("\n## time: XML attacks (fixtures/ates and fixtures/shapes)\n")
    print("| fixture | seconds | result |\n|---|---|---|")
    attacks = sorted((ROOT / "fixtures" / "shapes").glob("xml_*.eml"))
    attacks += [ROOT / "fixtures" / "ates" / f"{n}.eml" for n in ("billion_laughs_prologue",
                                                                  "doctype_in_token")]
    for path in attacks:
        seconds, result = timed(path.read_bytes())
        print(f"| {path.stem} | {seconds:.4f} | {result} |")


def part_chunks(work: Path) -> None:
    from bench.backlog import LAUNCHER, poller_command
    from testkit.serving import append_many
    mails = [big_mail(5 * MB) for _ in range(40)]
    server, account = dovecot_account()
    try:
        append_many(account, mails)
        config = settings_file(work, account)
        log = work / "chunks.log"
        out = subprocess.run([sys.executable, str(LAUNCHER), str(log), *poller_command(),
                              "--config", str(config), "once"], capture_output=True, text=True,
                             check=True)
        report = json.loads(out.stdout)
        client = account.client()
        client.select_folder("INBOX", readonly=True)
        flagged = len(client.search("KEYWORD $AtesProcessed"))
        client.logout()
    finally:
        server.close()
    total = sum(map(len, mails))
    print(f"\n## memory: 40 mails of 5 MB ({total / MB:.0f} MB) in one pass\n")
    print("| peak RSS (worker or helper) | both, PSS | seconds | exit | mails flagged |\n"
          "|---|---|---|---|---|")
    print(f"| {report['maxrss_kib'] / 1024:.0f} MiB | {report['pss_kib'] / 1024:.0f} MiB | "
          f"{report['seconds']:.1f} | {report['code']} | {flagged} |")


PARTS = {"size": part_size, "memory": part_memory, "time": part_time, "pass": part_pass,
         "chunks": part_chunks}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child-extract":
        child_extract(sys.argv[2])
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--child-pass":
        child_pass(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS), action="append")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for name in args.part or list(PARTS):
            PARTS[name](Path(folder))


if __name__ == "__main__":
    main()
