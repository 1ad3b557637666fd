"""Fixture-driven tests of the pure extraction path: raw mail → ParsedMessage → Alert.

* fixtures/ates/<case>.eml against fixtures/ates/<case>.expected.json (written by
  fixtures/ates/make_fixtures.py, which documents the expected-value rules), and the same for
  fixtures/shapes/ (mail shapes the corpus lacks and XML attacks, fixtures/shapes/make_shapes.py);
* every mail of fixtures/corpus/ (third-party test mails without an ATES token, see its
  SOURCES.md) is read through to the end and reported as having no token: none crashes the
  parser, none is taken for an alert.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import mailparser
import pytest

from poller.ates.alert import Alert, read_alert
from poller.errors import MessageError, TokenMissing
from poller.mail.headers import split_headers
from poller.mail.message import _bodies, _mime_tree, parse_message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ATES = FIXTURES / "ates"
SHAPES = FIXTURES / "shapes"
CORPUS = FIXTURES / "corpus"
EXPECTED_SUFFIX = ".expected.json"

# Far from every fixture's Date header, so a title built from this clock instead would show.
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

ATES_MAILS = sorted(ATES.glob("*.eml")) + sorted(SHAPES.glob("*.eml"))
CORPUS_MAILS = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "SOURCES.md")


def _extract(raw: bytes) -> Alert:
    return read_alert(parse_message(raw), NOW)


def _outcome(raw: bytes) -> dict[str, object]:
    """The extraction result in the shape of the expected files."""
    try:
        alert = _extract(raw)
    except MessageError as exc:
        return {"error": type(exc).__name__, "reason": str(exc)}
    return {
        "title": alert.title,
        "description": alert.description,
        "token": alert.token.public(),
        "attachments": [
            {"filename": a.filename, "size": a.size, "content_type": a.content_type}
            for a in alert.message.attachments
        ],
    }


@pytest.mark.parametrize("path", ATES_MAILS, ids=[f"{p.parent.name}/{p.stem}" for p in ATES_MAILS])
def test_ates_fixture_gives_its_expected_extraction(path: Path) -> None:
    expected_path = path.with_name(path.stem + EXPECTED_SUFFIX)
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    outcome = _outcome(path.read_bytes())
    if "error" in expected:
        assert outcome.get("error") == expected["error"], outcome
        assert expected["reason_contains"] in outcome["reason"]
    else:
        assert outcome == expected


@pytest.mark.parametrize("folder", [ATES, SHAPES], ids=["ates", "shapes"])
def test_every_ates_fixture_has_an_expected_file_and_vice_versa(folder: Path) -> None:
    mails = {p.stem for p in folder.glob("*.eml")}
    expected = {p.name.removesuffix(EXPECTED_SUFFIX) for p in folder.glob("*" + EXPECTED_SUFFIX)}
    assert mails, "no fixtures found"
    assert sorted(mails - expected) == [], "mails without an expected file"
    assert sorted(expected - mails) == [], "expected files without a mail"


@pytest.mark.parametrize("path", CORPUS_MAILS, ids=[p.relative_to(CORPUS).as_posix() for p in CORPUS_MAILS])
def test_corpus_mail_is_read_through_and_reported_as_having_no_token(path: Path) -> None:
    with pytest.raises(TokenMissing):
        _extract(path.read_bytes())


def test_every_corpus_mail_has_provenance() -> None:
    sources = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    assert CORPUS_MAILS, "no corpus mails found"
    for path in CORPUS_MAILS:
        assert f"| {path.relative_to(CORPUS).as_posix()} |" in sources, path


@pytest.mark.parametrize("path", ATES_MAILS + CORPUS_MAILS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_mail_passed_over_by_mail_parser_has_no_attachment_it_would_list(path):
    """parse_message hands mail-parser only mail with a part that is not an inline text body:
    for every other mail, mail-parser itself lists no attachment either."""
    raw = path.read_bytes()
    tree = _mime_tree(split_headers(raw), raw)
    if _bodies(tree).only_text:
        assert mailparser.MailParser(tree).attachments == []
