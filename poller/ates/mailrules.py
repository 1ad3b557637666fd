"""Rules for alert mail without a token: patterns on the From address, the subject and the
body make an Alert of a mail as a token would, with the UDF source the rule names.

Patterns are RE2 (google-re2): matching takes time linear in the mail whatever an operator
writes; RE2 refuses what it cannot match so (backreferences, look-around). Rules are plain
values (pattern texts), so they cross to the reading helper; each process compiles a pattern
once. A mail with a token is never given to the rules.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import re2

from poller.ates.alert import DESCRIPTION_LIMIT, TITLE_LIMIT, Alert, ticket_title
from poller.ates.token import AtesToken, Sourced
from poller.mail.authresults import authenticated, sender_domain
from poller.mail.html import html_to_text
from poller.mail.parsed import ParsedMessage
from poller.mail.quoting import quote_start

PATTERN_FIELDS = ("from", "subject", "body")
SOURCED_FIELDS = ("customer_id", "device_id", "alert_id", "ticket_id")
TEMPLATE_FIELDS = (*SOURCED_FIELDS, "title", "description")
# {name} in a template: the named group of that name (templates are the operator's, not mail)
_PLACEHOLDER_RE = re.compile(r"\{(\w{1,64}+)\}")


@dataclass(frozen=True)
class MailRule:
    """One [[rule]] of the rules file: its patterns by field, its templates by field, the
    clear pattern on the subject ('' : the [duplicates] clear_pattern decides), and whether the
    mail must be authenticated (Authentication-Results) for the rule to take it."""

    name: str
    source: str
    patterns: tuple[tuple[str, str], ...]
    templates: tuple[tuple[str, str], ...] = ()
    clear: str = ""
    authenticated: bool = False


@dataclass(frozen=True)
class RuleSet:
    """The rules of the rules file, in order, and the authserv-id of the receiving service."""

    rules: tuple[MailRule, ...]
    authserv_id: str = ""
    file: str = ""


@dataclass(frozen=True)
class Attempt:
    """How a rule fared with a mail: the fields whose patterns matched, the first that did not
    ('' when all did), and why it did not take the mail though all matched ('' when it did)."""

    rule: str
    matched: tuple[str, ...]
    missed: str = ""
    refused: str = ""


@dataclass(frozen=True)
class RuleMatch:
    """The rule that took a mail, the values its templates made (by field), and whether its
    clear pattern matched the subject (None: the rule has none)."""

    rule: MailRule
    values: dict[str, str] = field(default_factory=dict)
    clears: bool | None = None


def compile_pattern(pattern: str) -> re2._Regexp:
    """Return the RE2 pattern; raise ValueError with RE2's reason when it cannot be one."""
    try:
        return _compiled(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(
            exc.args[0], bytes) else str(exc)
        raise ValueError(f"not an RE2 pattern: {reason}") from None


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error is raised, and reported once by whoever loads it


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re2._Regexp:
    return re2.compile(pattern, _OPTIONS)


def group_names(rule: MailRule) -> set[str]:
    """Return the named groups of all the rule's patterns (clear included)."""
    names: set[str] = set()
    for _, pattern in (*rule.patterns, ("clear", rule.clear)):
        if pattern:
            names.update(compile_pattern(pattern).groupindex)
    return names


def placeholders(template: str) -> list[str]:
    """Return the {group} names a template uses."""
    return _PLACEHOLDER_RE.findall(template)


def apply(rules: RuleSet, message: ParsedMessage, body: str, explain: bool = False
          ) -> tuple[RuleMatch | None, list[Attempt]]:
    """Return the first rule that takes the mail (None when none does), and how the rules
    tried before it fared: with explain, every rule; without, only those whose patterns all
    matched (a refused authenticated rule). Every pattern a rule gives must match; a rule that
    must be authenticated takes only mail whose Authentication-Results of [rules] authserv_id
    pass for the From domain.

    All patterns of a field are matched together (an RE2 set: one scan of the text for all
    rules); only a rule whose patterns all match is searched again, for its named groups."""
    texts = {"from": matchable(sender_address(message.sender)),
             "subject": matchable(message.subject), "body": matchable(body)}
    index = _index(rules)
    hits = index.hits(texts)
    numbers = range(len(rules.rules)) if explain or hits is None else index.candidates(hits)
    attempts: list[Attempt] = []
    for number in numbers:
        rule = rules.rules[number]
        matched, missed = index.prefiltered(number, hits)
        groups: dict[str, str] = {}
        if not missed:
            matched, missed = [], ""
            for name, pattern in rule.patterns:
                compiled = compile_pattern(pattern)
                if hits is not None and not compiled.groupindex:
                    matched.append(name)  # the set found it, and it has no group to take
                    continue
                found = compiled.search(texts[name])
                if found is None:
                    missed = name
                    break
                matched.append(name)
                groups.update((k, v) for k, v in found.groupdict().items() if v is not None)
        if missed:
            attempts.append(Attempt(rule.name, tuple(matched), missed))
            continue
        if rule.authenticated:
            why = authenticated(message.auth_results, rules.authserv_id,
                                sender_domain(message.sender))
            if why:
                attempts.append(Attempt(rule.name, tuple(matched), refused=f"not authenticated: "
                                                                           f"{why}"))
                continue
        clears = None
        if rule.clear:
            cleared = compile_pattern(rule.clear).search(texts["subject"])
            clears = cleared is not None
            if cleared is not None:
                groups.update((k, v) for k, v in cleared.groupdict().items() if v is not None)
        attempts.append(Attempt(rule.name, tuple(matched)))
        values = {name: _filled(template, groups) for name, template in rule.templates}
        return RuleMatch(rule, values, clears), attempts
    return None, attempts


class _Index:
    """The patterns of all rules in one RE2 set per field, and where each rule's are in them."""

    def __init__(self, rules: RuleSet):
        sets = {name: re2.Set.SearchSet(_SET_OPTIONS) for name in PATTERN_FIELDS}
        self.keys = [tuple((name, sets[name].Add(pattern)) for name, pattern in rule.patterns)
                     for rule in rules.rules]
        # (field, key in its set) → the number of the rule the pattern is of
        self.owner = {(name, key): number for number, keys in enumerate(self.keys)
                      for name, key in keys}
        used = {name for name, _ in self.owner}
        for name in used:
            sets[name].Compile()
        self.sets = {name: sets[name] for name in used}

    def hits(self, texts: dict[str, str]) -> dict[str, set[int]] | None:
        """Return the patterns of each field that match its text; None when a set cannot tell
        (RE2 ran out of its memory budget): then each rule's patterns are searched one by one."""
        try:
            return {name: set(found.Match(texts[name]) or ()) for name, found in
                    self.sets.items()}
        except re2.error:
            return None

    def candidates(self, hits: dict[str, set[int]]) -> list[int]:
        """Return the numbers of the rules whose patterns all match, in order: the time goes
        with the patterns that match, not with the number of rules."""
        counts: dict[int, int] = {}
        for name, keys in hits.items():
            for key in keys:
                number = self.owner[name, key]
                counts[number] = counts.get(number, 0) + 1
        return sorted(n for n, count in counts.items() if count == len(self.keys[n]))

    def prefiltered(self, number: int, hits: dict[str, set[int]] | None
                    ) -> tuple[list[str], str]:
        """Return the fields of rule NUMBER whose patterns the sets found matching, in the
        rule's order, up to the first that did not ('' when all did, or without sets)."""
        matched: list[str] = []
        for name, key in self.keys[number] if hits is not None else ():
            if key not in hits[name]:
                return matched, name
            matched.append(name)
        return matched, ""


_SET_OPTIONS = re2.Options()
_SET_OPTIONS.log_errors = False
_SET_OPTIONS.max_mem = 64 << 20  # the sets' automata: all rules' patterns of one field
_INDEXES: dict[int, tuple[RuleSet, _Index]] = {}


def _index(rules: RuleSet) -> _Index:
    """Return the sets of these rules, built once per process (the rules are kept with them,
    so that their id names them while the entry lives)."""
    entry = _INDEXES.get(id(rules))
    if entry is None or entry[0] is not rules:
        if len(_INDEXES) >= 8:
            _INDEXES.clear()
        entry = _INDEXES[id(rules)] = (rules, _Index(rules))
    return entry[1]


def by_rules(rules: RuleSet, message: ParsedMessage, now: datetime) -> tuple[Alert | None, str]:
    """Return the alert the first rule that takes the mail makes of it, or None and what to add
    to the reason a mail without a token is skipped for (why rules that matched refused it)."""
    body = message.text or html_to_text(message.html)
    match, attempts = apply(rules, message, body)
    if match is not None:
        return rule_alert(match, message, body, now), ""
    refusals = [f"rule {a.rule!r} matched but did not take it: {a.refused}" for a in attempts
                if a.refused]
    return None, "; " + ("; ".join(refusals) if refusals else "no rule takes it")


def rule_alert(match: RuleMatch, message: ParsedMessage, body: str, now: datetime) -> Alert:
    """Return the Alert a rule makes of a mail: a token without PW whose sourced elements are
    the rule's templates (so the source's UDFs match them exactly as a token's), the title
    (default: the subject) and description (default: the body)."""
    values, source = match.values, match.rule.source
    sourced = {name: Sourced(source, values[name]) for name in SOURCED_FIELDS
               if values.get(name)}
    token = AtesToken(pw="", **sourced)
    title = values.get("title") or ticket_title(message, token, now)
    description = values.get("description") or body.strip()
    quote = quote_start(body, marks=False)
    return Alert(message=message, token=token, title=title[:TITLE_LIMIT],
                 description=description[:DESCRIPTION_LIMIT],
                 quoted=quote.kind if quote else "", rule=match.rule.name, clears=match.clears)


def _filled(template: str, groups: dict[str, str]) -> str:
    return _PLACEHOLDER_RE.sub(lambda m: groups.get(m.group(1), ""), template).strip()


def matchable(text: str) -> str:
    """Return text as RE2 can take it: a lone surrogate (an undecodable byte kept by a
    decoder) cannot be UTF-8, so it becomes U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def sender_address(sender: str) -> str:
    """Return the address of a From header ("Name <a@b>" → a@b)."""
    if sender.endswith(">") and sender.count("<") == 1 and '"' not in sender:
        return sender[sender.index("<") + 1:-1].strip()  # the usual form, without parsing
    return email.utils.parseaddr(sender)[1] or sender.strip()
