#!/usr/bin/env python3
"""Coverage-guided fuzzing (atheris/libFuzzer) of the extraction path: raw bytes → Alert.

The contract under test is the one the worker relies on: for any bytes, ``parse_message``
followed by ``read_alert`` returns an Alert or raises a MessageError subclass. Anything else
(another exception, an input slower than ``--timeout`` seconds (default 1: no mail may take
more than seconds, and every pattern on the path is linear), memory past ``--rss-limit-mb``)
is a finding; libFuzzer writes the input to ``fixtures/fuzz-regressions/`` (crash-*,
timeout-*, oom-*), where ``tests/test_hostile_mail.py`` replays it on every test run.

Usage (atheris is not a test dependency: ``pip install atheris`` first)::

    python fuzz/extract_fuzz.py --seconds 1800            # one bounded campaign
    python fuzz/extract_fuzz.py --seconds 600 -- -jobs=1  # extra libFuzzer flags after --

The working corpus (seeds copied from fixtures/ plus what the fuzzer finds) lives in
``.fuzz/corpus`` and is not committed. Seeds are every mail in fixtures/ates, fixtures/corpus,
fixtures/shapes and fixtures/fuzz-regressions.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

with atheris.instrument_imports(include=["poller", "mailparser", "xmltodict", "email"]):
    from poller.ates.alert import Alert, read_alert
    from poller.ates.policy import MASK as REDACTED
    from poller.errors import MessageError
    from poller.mail.fingerprint import fingerprint
    from poller.mail.message import parse_message
    from poller.mail.parsed import ParsedMessage

NOW = datetime(2030, 1, 1, tzinfo=UTC)
SEED_DIRS = ("fixtures/ates", "fixtures/corpus", "fixtures/shapes", "fixtures/fuzz-regressions")
NOT_MAIL = {".json", ".py", ".md"}


def check(data: bytes) -> None:
    """One fuzz input: the extraction must give an Alert or a MessageError, nothing else."""
    try:
        message = parse_message(data)
    except MessageError:
        return
    if not isinstance(message, ParsedMessage):
        raise TypeError(f"parse_message returned {type(message).__name__}")
    fingerprint(message, data)  # the worker names every mail it read
    try:
        alert = read_alert(message, NOW)
    except MessageError:
        return
    if not isinstance(alert, Alert):
        raise TypeError(f"read_alert returned {type(alert).__name__}")
    if not alert.title or len(alert.title) > 250 or len(alert.description) > 8000:
        raise AssertionError("title or description outside ATES's limits")
    for shown in (alert.title, alert.description):
        if alert.token.pw in shown.replace(REDACTED, ""):
            raise AssertionError("the PW is shown in the title or description")


def seed(corpus: Path) -> int:
    """Copy every fixture mail into the working corpus; return how many there are."""
    corpus.mkdir(parents=True, exist_ok=True)
    count = 0
    for folder in SEED_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix not in NOT_MAIL:
                name = f"seed-{folder.replace('/', '_')}-{path.relative_to(ROOT / folder)}"
                shutil.copyfile(path, corpus / name.replace("/", "_"))
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600, help="campaign length (default 600)")
    parser.add_argument("--corpus", type=Path, default=ROOT / ".fuzz" / "corpus")
    parser.add_argument("--artifacts", type=Path, default=ROOT / "fixtures" / "fuzz-regressions")
    parser.add_argument("--timeout", type=int, default=1, help="seconds one input may take")
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument("--max-len", type=int, default=256 * 1024)
    parser.add_argument("libfuzzer", nargs="*", help="extra libFuzzer flags (after --)")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # mail-parser warns about every odd part; too slow to print
    print(f"seeded {seed(args.corpus)} fixture mails into {args.corpus}", flush=True)
    args.artifacts.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.argv[0], str(args.corpus),
        f"-max_total_time={args.seconds}", f"-timeout={args.timeout}",
        f"-rss_limit_mb={args.rss_limit_mb}", f"-max_len={args.max_len}",
        f"-artifact_prefix={args.artifacts}/", f"-dict={ROOT / 'fuzz' / 'mail.dict'}",
        "-print_final_stats=1",
        *args.libfuzzer,
    ]
    atheris.Setup(argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
