"""What rules for mail without a token cost per mail: `python bench/rules.py [--rules N]`.

Times, in this process, today's reading of each mail of fixtures/rules/ (no rules), and on
top of it N rules (copies that take nothing, then the shipped ones, so every rule is tried
before one takes the mail): matching them, and the whole rules step, which also makes the
alert of the mail a rule takes (as reading a token makes a token mail's). The target is under
50 us per mail for matching 50 rules; without a rules file reading is unchanged (the rules are
never looked at).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from poller.ates.mailrules import RuleSet, apply, by_rules  # noqa: E402
from poller.ates.reading import read  # noqa: E402
from poller.config.rulesfile import load_rules  # noqa: E402
from poller.mail.message import parse_message  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "rules"
TARGET_US = 50.0


def ruleset(count: int) -> RuleSet:
    """The shipped rules after count - 4 copies of them that take no mail (their patterns
    name hosts and events no example has), so that every rule is tried before one takes."""
    shipped = load_rules(EXAMPLES / "rules.toml", "mx.msp.example").rules
    copies = tuple(
        replace(rule, name=f"copy {n}",
                patterns=tuple((field, f"(?:{pattern})never{n}") for field, pattern
                               in rule.patterns))
        for n in range(max(count - len(shipped.rules), 0))
        for rule in (shipped.rules[n % len(shipped.rules)],))
    return RuleSet(copies + shipped.rules, shipped.authserv_id, shipped.file)


def timed(step, items: list, rounds: int) -> float:
    """Return the microseconds per item of step(item), after a round to warm up."""
    for item in items:
        step(item)
    started = time.perf_counter()
    for _ in range(rounds):
        for item in items:
            step(item)
    return (time.perf_counter() - started) / (rounds * len(items)) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args(argv)
    mails = [path.read_bytes() for path in sorted(EXAMPLES.glob("*.eml"))]
    now = datetime.now(UTC)
    reading = timed(lambda raw: read(1, raw, now), mails, args.rounds)
    rules = ruleset(args.rules)
    parsed = [parse_message(raw) for raw in mails]
    matching = timed(lambda message: apply(rules, message, message.text), parsed, args.rounds)
    step = timed(lambda message: by_rules(rules, message, now), parsed, args.rounds)
    print(f"{len(mails)} example mails: reading {reading:.1f} us per mail without rules; "
          f"matching {args.rules} rules {matching:.1f} us per mail "
          f"({'within' if matching < TARGET_US else 'OVER'} the {TARGET_US:.0f} us target); "
          f"the whole rules step, the alert of the mail a rule takes included, {step:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
