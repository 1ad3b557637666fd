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
from poller.mail.message import ParsedMessage
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


def apply(rules: RuleSet, message: ParsedMessage, body: str) -> tuple[RuleMatch | None,
                                                                       list[Attempt]]:
    """Return the first rule that takes the mail (None when none does), and how each rule
    tried before it fared. Every pattern a rule gives must match; a rule that must be
    authenticated takes only mail whose Authentication-Results of [rules] authserv_id pass for
    the From domain."""
    texts = {"from": matchable(sender_address(message.sender)),
             "subject": matchable(message.subject), "body": matchable(body)}
    attempts: list[Attempt] = []
    for rule in rules.rules:
        groups: dict[str, str] = {}
        matched: list[str] = []
        missed = ""
        for name, pattern in rule.patterns:
            found = compile_pattern(pattern).search(texts[name])
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
    return email.utils.parseaddr(sender)[1] or sender.strip()
