"""Every regular expression that sees mail content takes time linear in the text's size.

Each pattern in poller.ates and poller.mail (found by walking the modules, so a new one is
covered without being listed) runs over 100 KB of adversarial text: long runs of each kind of
character, alone, after each near-match of a pattern, and near-matches repeated. The bound is
seconds per run where a linear pattern needs milliseconds: only super-linear backtracking (a
quadratic pattern needs minutes on 100 KB, a cubic one months) can break it. The bound is a
SIGALRM, which the regex engine checks, so a super-linear pattern fails instead of hanging.
Whole mails made of the same text go through the reading path (MIME, token, HTML) too.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import poller.ates
import poller.mail
from poller.ates.mailrules import MailRule, RuleSet, compile_pattern
from poller.ates.policy import DEFAULT_CLEAR_PATTERN
from poller.ates.reading import read
from poller.ates.token import closing_tag
from poller.config.rulesfile import load_rules
from poller.mail.quoting import new_text, quote_start, reply_prefix
from testkit.support import TooSlow, within

RULE_EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "rules"
SIZE = 100_000
BOUND = 3.0  # seconds for one run over SIZE characters
NOW = datetime(2030, 1, 1, tzinfo=UTC)

RUNS = [" ", "\t", "\n", "\r\n", "<", ">", "/", "=", '"', "'", "&", ";", "#", "!", "a", "Z",
        "_", "-", ".", "0", ":", "?", "“", "‘", "\xa0", "é"]
NEAR = ["<", "</", "<!", "<Customer", "<autotask", "</autotask", "<br", "</p", "<style",
        "</style", '<PW name="', "<PW name='", "name=", "=", "=“", "=‘", "&", "&a", "&#",
        "a", "Subject", "clear", "=?utf-8?q?", "--"]


def _patterns() -> dict[str, re.Pattern]:
    found: dict[str, re.Pattern] = {}
    for package in (poller.ates, poller.mail):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                values = value.values() if isinstance(value, dict) else [value]
                for index, item in enumerate(values):
                    if isinstance(item, re.Pattern):
                        found[f"{info.name}.{name}[{index}]"] = item
    found["token.closing_tag"] = closing_tag("Customer")
    found["DEFAULT_CLEAR_PATTERN"] = re.compile(DEFAULT_CLEAR_PATTERN)
    return found


PATTERNS = _patterns()


def _texts() -> Iterator[tuple[str, str]]:
    for run in RUNS:
        yield f"{run!r} run", run * (SIZE // len(run))
    for near in NEAR:
        yield f"{near!r} repeated", near * (SIZE // len(near))
        for run in RUNS:
            yield f"{near!r} + {run!r} run", near + run * (SIZE // len(run))
            yield f"({near!r} + {run!r}) repeated", (near + run) * (SIZE // len(near + run))


TEXTS = list(_texts())


def test_the_patterns_of_the_reading_path_are_all_found():
    names = " ".join(PATTERNS)
    for expected in ("token._ELEMENT_RE", "token._ATTR_RE", "token._CURLY_ATTR_RE",
                     "html._BR_RE", "html._INVISIBLE_CLOSE", "headers._HEADER_NAME_RE",
                     "mime._BOUNDARY_END_RE", "mime._FIELD_RE"):
        assert expected in names


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_pattern_is_linear_on_adversarial_text(name):
    pattern = PATTERNS[name]
    for what, text in TEXTS:
        subject = text.encode("utf-8") if isinstance(pattern.pattern, bytes) else text
        try:
            with within(BOUND):
                for _match in pattern.finditer(subject):
                    pass
        except TooSlow:
            pytest.fail(f"{name} took over {BOUND} s on {what} ({len(subject)} characters)")


def _mails() -> Iterator[tuple[str, bytes]]:
    token = '<Autotask><PW name="pw"/><Customer'
    for run in (" ", "\n", "<", "=", '"', "a", "&"):
        filler = run * (SIZE // len(run))
        yield f"text: token + {run!r}", (f"Subject: x\n\n{token}{filler}").encode()
        # under the 64 KB a token may have, so that the element scanner reads it
        yield f"closed token + {run!r}", (f"Subject: x\n\n{token}{filler[:60_000]}"
                                          f"</Autotask>").encode()
        yield f"html: token + {run!r}", (f"Subject: x\nContent-Type: text/html\n\n<p>{token}"
                                          f"{filler}").encode()
        yield f"subject {run!r}", f"Subject: {filler.replace(chr(10), ' ')}\n\nbody".encode()
    multipart = "Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n"
    part = "--b\nContent-Type: text/plain\n\nx\n"
    yield "multipart: many parts", (multipart + part * (SIZE // len(part)) + "--b--\n").encode()
    yield "multipart: spaces after a boundary", (f"{multipart}--b{' ' * SIZE}x\n--b--\n").encode()
    yield "multipart: boundary lines", (multipart + "--b\n" * (SIZE // 4)).encode()
    for near in ("<Customer", "<br", "<style", "=“", "&a", "=?utf-8?q?", "<autotask"):
        filler = (near + " ") * (SIZE // (len(near) + 1))
        yield f"text {near!r} repeated", f"Subject: x\n\n{filler}".encode()
        yield f"html {near!r} repeated", f"Content-Type: text/html\n\n{filler}".encode()


@pytest.mark.parametrize("what,raw", list(_mails()), ids=[what for what, _ in _mails()])
def test_reading_an_adversarial_mail_is_linear(what, raw):
    try:
        with within(BOUND):
            reading = read(1, raw, NOW)
    except TooSlow:
        pytest.fail(f"reading took over {BOUND} s on {what} ({len(raw)} bytes)")
    assert reading.alert is not None or reading.problem


QUOTING_NEAR = ["From:", "From: a\n", "From: a\nSent: b\nTo: c\n", "wrote", "wrote:", " wrote",
                "On a wrote:\n", "On a\nwrote:", "Sent:", "--", "-----", "-- Original Message",
                "[", "[x]", "[x] ", "Re[", "Re[1", "\n>", ">", "a écrit", "Begin forwarded",
                "*", "* From *"]


def _quoting_texts() -> Iterator[tuple[str, str]]:
    for near in QUOTING_NEAR:
        yield f"{near!r} repeated", near * (SIZE // len(near))
        for run in (" ", "\n", "a", ":", ">", "-", "_"):
            yield f"({near!r} + {run!r}) repeated", (near + run) * (SIZE // len(near + run))
            yield f"{near!r} + {run!r} run", near + run * (SIZE // len(run))


@pytest.mark.parametrize("what,text", list(_quoting_texts()),
                         ids=[what for what, _ in _quoting_texts()])
def test_finding_the_quoted_part_and_the_subject_prefix_is_linear(what, text):
    """The quoted part is found by patterns and by looking at lines one by one; both together
    stay linear on text written to make them look at the same characters again and again."""
    try:
        with within(BOUND):
            quote_start(text)
            new_text(text)
            reply_prefix(text)
    except TooSlow:
        pytest.fail(f"finding the quoted part took over {BOUND} s on {what}")


# Patterns an operator may write into the rules file, written to be slow where a backtracking
# engine runs them: RE2 matches each in linear time.
SLOW_BY_DESIGN = [r"(a+)+$", r"(x+x+)+y", r"(.*a){12}", r"(a|aa)+b", r"^(\w+\s?)*$",
                  r"(?i)(\S+\s+)*:\s*$", r"(.*?,){11}P"]


def _rule_patterns() -> dict[str, str]:
    rules = load_rules(RULE_EXAMPLES / "rules.toml", "mx.example").rules
    found = {f"{rule.name}.{name}": pattern for rule in rules.rules
             for name, pattern in (*rule.patterns, ("clear", rule.clear)) if pattern}
    found.update((f"slow {pattern}", pattern) for pattern in SLOW_BY_DESIGN)
    return found


RULE_PATTERNS = _rule_patterns()
RULE_TEXTS = [(what, text) for what, text in TEXTS if "+" not in what]


@pytest.mark.parametrize("name", sorted(RULE_PATTERNS))
def test_rule_patterns_are_linear_whatever_the_operator_writes(name):
    pattern = compile_pattern(RULE_PATTERNS[name])
    for what, text in RULE_TEXTS:
        try:
            with within(BOUND):
                for _match in pattern.finditer(text):
                    pass
        except TooSlow:
            pytest.fail(f"{name} took over {BOUND} s on {what} ({len(text)} characters)")


def test_a_rule_written_to_be_slow_reads_a_large_mail_in_linear_time():
    rules = RuleSet(tuple(MailRule(f"slow{n}", "S", (("subject", "x"), ("body", pattern)))
                          for n, pattern in enumerate(SLOW_BY_DESIGN)))
    raw = b"Subject: x\n\n" + b"a" * 2_000_000 + b"!"
    try:
        with within(BOUND):
            reading = read(1, raw, NOW, rules)
    except TooSlow:
        pytest.fail(f"reading took over {BOUND} s with the slow rules")
    assert reading.alert is None or reading.alert.rule.startswith("slow")
