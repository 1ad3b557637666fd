"""[rules]: the rules file for alert mail without a token (TOML, read with the standard library)
→ poller.ates.mailrules.RuleSet, and its [[expect]] entries → poller.ates.expected. Anything
wrong in it is a ConfigError naming the file, the rule (or entry) and the field: a pattern RE2
cannot compile, a template naming a group no pattern has, a deadline that is not a cron
expression, an unknown key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from poller.config.sections import Section
from poller.errors import ConfigError

if TYPE_CHECKING:  # the rules' modules (RE2, the token reader) load with a rules file only
    from poller.ates.expected import Expectation
    from poller.ates.mailrules import MailRule, RuleSet

EXPECT_KEYS = ("name", "from", "subject", "deadline", "organization", "device", "priority")
MAX_RULES_FILE = 1024 * 1024


@dataclass(frozen=True)
class RulesSettings:
    """[rules] file (None: no rules), authserv_id (the receiving service's
    Authentication-Results id, for rules with authenticated = true) and timezone (of the
    [[expect]] deadlines; '': the system's)."""

    file: str | None = None
    authserv_id: str = ""
    timezone: str = ""


@dataclass(frozen=True)
class Loaded:
    """What the rules file holds: the rules, and the [[expect]] entries."""

    rules: RuleSet
    expectations: tuple[Expectation, ...] = ()


def read_rules_settings(section: Section, base: Path) -> tuple[RulesSettings, Loaded | None]:
    """Return the [rules] settings and what the file holds (None without a file)."""
    name = section.str("file")
    authserv_id = section.str("authserv_id", "") or ""
    timezone = section.str("timezone", "") or ""
    if timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # (a pass without rules skips it)

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"[rules] timezone: {timezone!r} is not a time zone name "
                              "(e.g. Europe/Berlin)") from None
    if not name:
        return RulesSettings(None, authserv_id, timezone), None
    path = Path(name).expanduser()
    path = path if path.is_absolute() else base / path
    return RulesSettings(str(path), authserv_id, timezone), load_rules(path, authserv_id)


def load_rules(path: Path, authserv_id: str = "") -> Loaded:
    """Read and check the rules file; raise ConfigError naming the file, rule and field."""
    import tomllib

    from poller.ates.mailrules import RuleSet

    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_RULES_FILE + 1)
        if len(data) > MAX_RULES_FILE:
            raise ConfigError(f"{path}: the rules file is over {MAX_RULES_FILE} bytes")
        table = tomllib.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"[rules] file: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"[rules] file: cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = [key for key in table if key not in ("rule", "expect")]
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (the file holds [[rule]] and "
                          "[[expect]] tables)")
    rules: list[MailRule] = []
    for number, entry in enumerate(_tables(path, table, "rule"), 1):
        rule = _rule(path, number, entry, authserv_id)
        if any(other.name == rule.name for other in rules):
            raise ConfigError(f"{path}: rule {rule.name!r}: another rule has this name")
        rules.append(rule)
    expectations: list[Expectation] = []
    for number, entry in enumerate(_tables(path, table, "expect"), 1):
        expectation = _expectation(path, number, entry)
        if any(other.name == expectation.name for other in expectations):
            raise ConfigError(f"{path}: expect {expectation.name!r}: another entry has this name")
        expectations.append(expectation)
    return Loaded(RuleSet(tuple(rules), authserv_id, str(path)), tuple(expectations))


def _tables(path: Path, table: dict, key: str) -> list[dict]:
    entries = table.get(key, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{path}: {key}: write each as a [[{key}]] table")
    return entries


def _expectation(path: Path, number: int, entry: dict) -> Expectation:
    from apscheduler.triggers.cron import CronTrigger

    from poller.ates.expected import Expectation
    from poller.ates.mailrules import compile_pattern

    name = entry.get("name")
    where = (f"{path}: expect {name!r}" if isinstance(name, str) and name
             else f"{path}: expect #{number}")

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: {problem}")

    for key, value in entry.items():
        if key not in EXPECT_KEYS:
            raise fail(key, f"unknown key (use any of {', '.join(EXPECT_KEYS)})")
        if not isinstance(value, str):
            raise fail(key, f"must be a text, not {type(value).__name__}")
    for key in ("name", "deadline", "organization"):
        if not entry.get(key, "").strip():
            raise fail(key, "is required (a text)")
    patterns = tuple((key, entry[key]) for key in ("from", "subject") if key in entry)
    if not patterns:
        raise fail("from", "an entry needs a from or a subject pattern")
    for key, pattern in patterns:
        try:
            compile_pattern(pattern)
        except ValueError as exc:
            raise fail(key, str(exc)) from None
    try:
        CronTrigger.from_crontab(entry["deadline"])
    except ValueError as exc:
        raise fail("deadline", f"not a 5-field cron expression: {exc}") from None
    return Expectation(name=entry["name"].strip(), patterns=patterns,
                       deadline=entry["deadline"].strip(),
                       organization=entry["organization"].strip(),
                       device=entry.get("device", "").strip(),
                       priority=entry.get("priority", "").strip())


def _rule(path: Path, number: int, entry: dict, authserv_id: str) -> MailRule:
    from poller.ates.mailrules import (
        PATTERN_FIELDS,
        TEMPLATE_FIELDS,
        MailRule,
        compile_pattern,
        group_names,
        placeholders,
    )

    keys = ("name", "source", *PATTERN_FIELDS, *TEMPLATE_FIELDS, "clear", "authenticated")
    name = entry.get("name")
    where = f"{path}: rule {name!r}" if isinstance(name, str) and name else f"{path}: rule #{number}"

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: {problem}")

    for key in entry:
        if key not in keys:
            raise fail(key, f"unknown key (use any of {', '.join(keys)})")
    for key in ("name", "source"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise fail(key, "is required (a text)")
    texts = {key: value for key, value in entry.items() if key not in ("authenticated",)}
    for key, value in texts.items():
        if not isinstance(value, str):
            raise fail(key, f"must be a text, not {type(value).__name__}")
    patterns = tuple((key, entry[key]) for key in PATTERN_FIELDS if key in entry)
    if not patterns:
        raise fail("from", "a rule needs at least one pattern: from, subject or body")
    for key, pattern in (*patterns, ("clear", entry.get("clear", ""))):
        if pattern:
            try:
                compile_pattern(pattern)
            except ValueError as exc:
                raise fail(key, str(exc)) from None
    authenticated = entry.get("authenticated", False)
    if not isinstance(authenticated, bool):
        raise fail("authenticated", "must be true or false")
    if authenticated and not authserv_id:
        raise fail("authenticated", "needs [rules] authserv_id, the receiving service's "
                                    "Authentication-Results id")
    rule = MailRule(name=entry["name"].strip(), source=entry["source"].strip(),
                    patterns=patterns,
                    templates=tuple((key, entry[key]) for key in TEMPLATE_FIELDS if key in entry),
                    clear=entry.get("clear", ""), authenticated=authenticated)
    groups = group_names(rule)
    for key, template in rule.templates:
        missing = [group for group in placeholders(template) if group not in groups]
        if missing:
            raise fail(key, f"{{{missing[0]}}} names no group of the rule's patterns "
                            f"(named groups: {', '.join(sorted(groups)) or 'none'})")
    return rule
