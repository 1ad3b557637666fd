"""`poller rules test FILE.eml`: which rule takes a mail, what it takes, and what the worker
would do with it, by the worker's own code, without changing the store."""

from __future__ import annotations

import argparse
import json
import sys

from poller.ates.mailrules import apply
from poller.ates.reading import read
from poller.ates.rules import decide
from poller.cli.exits import EXIT_CONFIG, EXIT_OK
from poller.clock import utc_now
from poller.config import Settings
from poller.errors import MessageError
from poller.mail.html import html_to_text
from poller.mail.message import parse_message
from poller.store.readonly import directory_to_read
from poller.store.store import Store


def rules_command(settings: Settings, args: argparse.Namespace) -> int:
    rules = settings.rule_set
    if rules is None:
        print("poller: rules test: no [rules] file is set", file=sys.stderr)
        return EXIT_CONFIG
    try:
        raw = args.file.read_bytes()
    except OSError as exc:
        print(f"poller: rules test: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    now = utc_now()
    reading = read(0, raw, now, rules)
    out: dict[str, object] = {"file": str(args.file), "rules_file": rules.file, "rule": None}
    alert = reading.alert
    if alert is not None and alert.rule:
        out["rule"] = alert.rule
        out["fields"] = {"title": alert.title, "description": alert.description,
                         **{k: v["value"] for k, v in alert.token.public().items()
                            if isinstance(v, dict)}}
    elif alert is not None:
        out["token"] = "the mail carries a token: it is handled by its token, not by the rules"
    out["attempts"] = _attempts(raw, rules)
    out["decision"] = _decision(settings, reading, now)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        _print(out)
    return EXIT_OK


def _attempts(raw: bytes, rules) -> list[dict[str, object]]:
    """How each rule tried fared with the mail (the rules' own matching)."""
    try:
        message = parse_message(raw)
    except MessageError:
        return []
    _, attempts = apply(rules, message, message.text or html_to_text(message.html), explain=True)
    return [{"rule": a.rule, "matched": list(a.matched), "did_not_match": a.missed or None,
             "refused": a.refused or None} for a in attempts]


def _decision(settings: Settings, reading, now) -> dict[str, object]:
    with directory_to_read(settings.database.url, settings.database.password) as db:
        decision = decide(reading, Store(db, settings.ates.local_organization),
                          settings.policy())
        number = None
        if decision.ticket_id is not None:
            row = db.sql("SELECT number FROM ticket WHERE id = ?",
                         (decision.ticket_id,)).fetchone()
            number = row[0] if row else None
    return {"outcome": decision.outcome.value, "reason": decision.reason, "ticket": number,
            "organization_id": decision.organization_id, "device_id": decision.device_id,
            "notes": list(decision.notes)}


def _print(out: dict[str, object]) -> None:
    print(f"mail:     {out['file']}")
    print(f"rules:    {out['rules_file']}")
    if out["rule"]:
        print(f"rule:     {out['rule']}")
        for key, value in out["fields"].items():
            if value:
                print(f"  {key}: {value}")
    else:
        print(f"rule:     none{' (' + out['token'] + ')' if 'token' in out else ''}")
        attempts = out["attempts"]
        if attempts and not out.get("token"):
            closest = max(attempts, key=lambda a: len(a["matched"]))
            why = closest["refused"] or f"its {closest['did_not_match']} pattern did not match"
            print(f"closest:  {closest['rule']}: {why}")
    decision = out["decision"]
    print(f"decision: {decision['outcome']}"
          f"{' ticket ' + decision['ticket'] if decision['ticket'] else ''}: {decision['reason']}")
