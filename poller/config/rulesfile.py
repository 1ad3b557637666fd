"""[rules]: the rules file for alert mail without a token (TOML, read with the standard library)
→ poller.ates.mailrules.RuleSet. Anything wrong in it is a ConfigError naming the file, the
rule and the field: a pattern RE2 cannot compile, a template naming a group no pattern has, an
unknown key."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from poller.ates.mailrules import (
    PATTERN_FIELDS,
    TEMPLATE_FIELDS,
    MailRule,
    RuleSet,
    compile_pattern,
    group_names,
    placeholders,
)
from poller.config.sections import Section
from poller.errors import ConfigError

RULE_KEYS = ("name", "source", *PATTERN_FIELDS, *TEMPLATE_FIELDS, "clear", "authenticated")
MAX_RULES_FILE = 1024 * 1024


@dataclass(frozen=True)
class RulesSettings:
    """[rules] file (None: no rules) and authserv_id (the receiving service's
    Authentication-Results id, for rules with authenticated = true)."""

    file: str | None = None
    authserv_id: str = ""


def read_rules_settings(section: Section, base: Path) -> tuple[RulesSettings, RuleSet | None]:
    """Return the [rules] settings and the rules the file holds (None without a file)."""
    name = section.str("file")
    authserv_id = section.str("authserv_id", "") or ""
    if not name:
        return RulesSettings(None, authserv_id), None
    path = Path(name).expanduser()
    path = path if path.is_absolute() else base / path
    return RulesSettings(str(path), authserv_id), load_rules(path, authserv_id)


def load_rules(path: Path, authserv_id: str = "") -> RuleSet:
    """Read and check the rules file; raise ConfigError naming the file, rule and field."""
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
    unknown = [key for key in table if key != "rule"]
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (the file holds [[rule]] tables)")
    entries = table.get("rule", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{path}: rule: write each rule as a [[rule]] table")
    rules: list[MailRule] = []
    for number, entry in enumerate(entries, 1):
        rule = _rule(path, number, entry, authserv_id)
        if any(other.name == rule.name for other in rules):
            raise ConfigError(f"{path}: rule {rule.name!r}: another rule has this name")
        rules.append(rule)
    return RuleSet(tuple(rules), authserv_id, str(path))


def _rule(path: Path, number: int, entry: dict, authserv_id: str) -> MailRule:
    name = entry.get("name")
    where = f"{path}: rule {name!r}" if isinstance(name, str) and name else f"{path}: rule #{number}"

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: {problem}")

    for key in entry:
        if key not in RULE_KEYS:
            raise fail(key, f"unknown key (use any of {', '.join(RULE_KEYS)})")
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
