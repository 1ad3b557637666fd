"""Hostile and broken mail: XML attacks fetch and expand nothing, `poller parse` survives every
fixture, fuzzing finds stay fixed, forwarded tokens are not used, and oversized mail is never
downloaded."""

from __future__ import annotations

import html
import json
import socket
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from poller.ates.alert import read_alert
from poller.ates.reading import read
from poller.cli import main
from poller.errors import MessageError, TokenInvalid, TokenMissing
from poller.mail.message import parse_message
from testkit.counting_proxy import CountingProxy
from testkit.support import PW, alert_mail, poller, poller_json, token, within, write_settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REGRESSIONS = sorted((FIXTURES / "fuzz-regressions").glob("*-*"))
EVERY_MAIL = sorted(p for folder in ("ates", "shapes", "corpus", "fuzz-regressions")
                    for p in (FIXTURES / folder).rglob("*")
                    if p.is_file() and p.suffix not in (".json", ".py", ".md"))
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _extract(raw: bytes):
    return read_alert(parse_message(raw), NOW)


# What each finding gives since its fix (fixtures/fuzz-regressions/README.md): the error a
# pass records and a part of its reason. A new finding must be added here too.
FIXED = {
    "crash-3e7560f3a6940399b9402351b963843b50ab885b":
        (MessageError, "unparseable MIME: HeaderParseError: header value appears to contain"),
    "crash-ce941a06c0a22691184aa82c584043d22d19a301":  # read through, date and all
        (TokenMissing, "no <Autotask> token"),
    "crash-8b5a2aca889abe634c19dc01110e3a65e5c3d01d":  # a lone surrogate in an attachment's text
        (TokenMissing, "no <Autotask> token"),
}


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.name[:20] for p in REGRESSIONS])
def test_fuzz_finding_gives_the_error_and_reason_its_fix_promises_within_seconds(
        path: Path) -> None:
    error, reason = FIXED[path.name]
    raw = path.read_bytes()
    with within(10):  # fuzzing reports inputs over 1 s, with instrumentation that slows it
        reading = read(1, raw, NOW)
        with pytest.raises(MessageError) as info:
            _extract(raw)
    assert type(info.value) is error and reason in str(info.value)
    assert reason in reading.problem  # the worker's reading says the same


def test_fuzz_findings_are_kept() -> None:
    assert REGRESSIONS, "fixtures/fuzz-regressions/ holds the inputs fuzzing found"
    notes = (FIXTURES / "fuzz-regressions" / "README.md").read_text(encoding="utf-8")
    for path in REGRESSIONS:
        assert path.name in notes, f"{path.name} is not described in the README"


# ---------------------------------------------------------------- XML attacks


@pytest.fixture
def listener():
    """A TCP port on 127.0.0.1 that records whether anyone connected."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    yield server
    server.close()


def _connections(server: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def _attacks(url: str, secret_file: Path) -> dict[str, str]:
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    return {
        "billion laughs": f'<Autotask><!DOCTYPE Autotask [<!ENTITY l0 "lol">{lol}]>'
                          f'<PW name="{PW}"/><Customer name="&l9;"/></Autotask>',
        "quadratic blowup": f'<Autotask><!DOCTYPE a [<!ENTITY a "{"x" * 20000}">]>'
                            f'<PW name="{PW}"/><Customer name="{"&a;" * 2000}"/></Autotask>',
        "external entity (file)": f'<!DOCTYPE a [<!ENTITY x SYSTEM "file://{secret_file}">]>'
                                  f'<Autotask><PW name="{PW}"/><Customer name="&x;"/></Autotask>',
        "external entity (file, in token)":
            f'<Autotask><!DOCTYPE a [<!ENTITY x SYSTEM "file://{secret_file}">]>'
            f'<PW name="{PW}"/><Customer name="&x;"/></Autotask>',
        "external entity (network)": f'<Autotask><!DOCTYPE a [<!ENTITY x SYSTEM "{url}/x">]>'
                                     f'<PW name="{PW}"/><Customer name="&x;"/></Autotask>',
        "parameter entity": f'<Autotask><!DOCTYPE a [<!ENTITY % p SYSTEM "{url}/p.dtd">%p;]>'
                            f'<PW name="{PW}"/></Autotask>',
        "external DTD": f'<Autotask><!DOCTYPE Autotask SYSTEM "{url}/ates.dtd">'
                        f'<PW name="{PW}"/></Autotask>',
        "external DTD (public id)": f'<Autotask><!DOCTYPE Autotask PUBLIC "-//X//Y" "{url}/a.dtd">'
                                    f'<PW name="{PW}"/></Autotask>',
    }


def test_xml_attacks_are_refused_and_nothing_is_fetched_or_expanded(tmp_path, listener):
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("FILE-CONTENT-MARKER", encoding="utf-8")
    for name, xml in _attacks(url, secret_file).items():
        raw = alert_mail(subject=name, tok=xml)
        with pytest.raises(TokenInvalid) as refused:
            _extract(raw)
        assert "DTD" in str(refused.value) or "entity" in str(refused.value), name
        assert "FILE-CONTENT-MARKER" not in str(refused.value)
    assert _connections(listener) == 0


def test_a_dtd_outside_the_token_is_body_text_and_is_never_fetched(listener):
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    raw = alert_mail(body=f'Disk full.\n<!DOCTYPE Autotask SYSTEM "{url}/ates.dtd">',
                     tok=token(AlertID="Kaseya:1"))
    alert = _extract(raw)
    assert alert.token.alert_id.value == "1"
    assert _connections(listener) == 0


# ---------------------------------------------------------------- documented rules


def test_a_token_only_inside_a_forwarded_message_is_not_used() -> None:
    raw = (FIXTURES / "shapes" / "token_only_in_forwarded_message.eml").read_bytes()
    assert b"<Autotask>" in raw
    with pytest.raises(TokenMissing):
        _extract(raw)


def test_the_outer_token_wins_over_one_in_an_attached_message() -> None:
    alert = _extract((FIXTURES / "shapes" / "nested_rfc822_with_outer_token.eml").read_bytes())
    assert alert.token.customer == "MSPs Customer Incorporated"
    assert "Forwarded Customer" not in alert.description
    assert [a.content_type for a in alert.message.attachments] == ["message/rfc822"]


def _alternative(text: str, html_body: str) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = "Disk full on SRV1"
    msg.set_content(text)
    msg.add_alternative(html_body, subtype="html")
    return bytes(msg)


@pytest.mark.parametrize("broken", [token(AlertID="Kaseya:1").removesuffix("</Autotask>"),
                                    token(AlertID="Kaseya:1").replace("<PW", "<XX")],
                         ids=["unclosed", "no-pw"])
def test_a_broken_token_in_the_text_part_does_not_hide_a_good_one_in_the_html_part(broken):
    good = html.escape(token(AlertID="Kaseya:2")).replace("\n", "<br>\n")
    alert = _extract(_alternative(f"Disk full.\n{broken}\n", f"<p>Disk full.<br>{good}</p>"))
    assert alert.token.alert_id.value == "2" and alert.description == "Disk full."


def test_when_every_part_has_a_broken_token_the_text_parts_reason_is_given():
    broken = token(AlertID="Kaseya:1")
    raw = _alternative(broken.removesuffix("</Autotask>"), html.escape(broken.replace("<PW", "<X")))
    with pytest.raises(TokenInvalid, match="not closed"):
        _extract(raw)


def test_of_two_tokens_the_last_one_wins_and_the_first_is_not_in_the_description() -> None:
    first = token(pw="first-pw", Customer="First")
    alert = _extract(alert_mail(body=f"Alert one.\n\n{first}\n\nAlert two.",
                                tok=token(Customer="Second")))
    assert alert.token.customer == "Second"
    assert alert.description == "Alert two."


# ---------------------------------------------------------------- poller parse


@pytest.fixture(scope="module")
def parse_settings(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("parse")
    path = folder / "settings.ini"
    path.write_text(f"[imap]\nhost = 127.0.0.1\nusername = u\npassword = p\n[ates]\npassword = {PW}\n"
                    f"[database]\nurl = sqlite:///{folder}/tickets.db\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("path", EVERY_MAIL,
                         ids=[p.relative_to(FIXTURES).as_posix() for p in EVERY_MAIL])
def test_parse_command_gives_a_decision_or_a_reason_for_every_mail(parse_settings, path, capsys):
    capsys.readouterr()
    assert main(["--config", str(parse_settings), "parse", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    if "error" in out:
        assert out["error"] in ("MessageError", "TokenMissing", "TokenInvalid") and out["reason"]
    else:
        assert out["decision"]["outcome"] in ("created", "appended", "completed", "skipped",
                                              "quarantined")


# ---------------------------------------------------------------- size limit


def test_oversized_mail_is_quarantined_without_its_body_crossing_the_wire(tmp_path, imap_account,
                                                                          capsys):
    with CountingProxy(imap_account.host, imap_account.port) as proxy:
        config = write_settings(tmp_path, imap_account, imap={"port": str(proxy.port)},
                                limits={"max_message_bytes": str(256 * 1024)})
        big = alert_mail(body="x" * 2_000_000)
        imap_account.append("INBOX", big)
        assert poller(config, "once") == 0
    assert proxy.from_server < 20_000 < len(big)  # the pass downloaded a few KB, not 2 MB
    assert len(imap_account.messages("Quarantine")) == 1
    (row,) = poller_json(config, capsys, "messages")
    assert row["outcome"] == "quarantined" and "over the limit" in row["reason"]

    # the same mail under the limit is downloaded: the proxy does see bodies
    with CountingProxy(imap_account.host, imap_account.port) as proxy:
        write_settings(tmp_path, imap_account, imap={"port": str(proxy.port)})
        imap_account.append("INBOX", alert_mail(body="y" * 2_000_000))
        assert poller(config, "once") == 0
    assert proxy.from_server > 2_000_000


def test_the_first_of_two_subjects_is_the_title_and_an_overflowing_date_is_none() -> None:
    raw = (b"Subject: first\r\nSubject: second\r\nDate: Wed, 7 Dec 2011 20:32:40 +0900000000000"
           b"000000000000000\r\n\r\n" + token().encode())
    message = parse_message(raw)
    assert message.subject == "first" and message.date is None
    assert _extract(raw).title == "first"


@pytest.mark.parametrize("where", ["mail", "part"])
def test_a_huge_content_type_header_is_refused_before_its_parameters_are_read(where) -> None:
    """The standard library reads MIME parameters in time that grows with the square of the
    header (1 MB took 2 s of a boundary search, 10 s of filename look-ups): such a header is
    refused, in linear time, before any of it is parsed."""
    params = "; ".join(f"name*{i}=a" for i in range(75_000))  # about 1 MB
    if where == "mail":
        raw = (f"From: a@b\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
               f"boundary=zz; {params}\r\n\r\n--zz\r\n\r\n{token()}\r\n--zz--\r\n").encode()
    else:
        raw = (f"From: a@b\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
               f"boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain;\r\n {params}\r\n\r\n"
               f"{token()}\r\n--zz--\r\n").encode()
    with within(2), pytest.raises(MessageError, match="at most 8192 are read"):
        parse_message(raw)


def test_a_long_but_real_filename_is_read() -> None:
    name = "Quartalsbericht " * 60 + ".pdf"  # about 1 KB, RFC 2231-encoded by the library
    raw = alert_mail(attachments=((name, b"%PDF-1.4", "application/pdf"),))
    assert [a.filename for a in parse_message(raw).attachments] == [name]
