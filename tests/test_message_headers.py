"""parse_message hands mail-parser only the headers it reads: what comes back must not change."""

from __future__ import annotations

from datetime import UTC, datetime

from poller.mail.headers import split_headers
from poller.mail.message import parse_message

BODY = b"Disk C: is 99% full.\r\n"
TRACE = (
    b"Received: from vsa01.client.example (vsa01 [192.0.2.1])\r\n"
    b"\tby mx1.msp.example (Postfix) with ESMTPS id 93ACC66A57;\r\n"
    b"\tThu, 26 Nov 2026 10:00:05 +0000\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=client.example; s=s1;\r\n"
    b" bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AbCd\r\n"
    b"To: Alerts <alerts@msp.example>, =?utf-8?q?J=C3=B6rg?= <j@msp.example>\r\n"
)
HEADERS = (
    b"From: =?utf-8?q?=C3=9Cberwachung?=\r\n <monitor@client.example>\r\n"
    b"Subject: =?utf-8?q?Temp=C3=A9rature_=C3=A9lev=C3=A9e_on?=\r\n =?utf-8?q?_SRV1?=\r\n"
    b"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <a1@client.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
)


def test_trace_and_address_headers_change_nothing_read():
    plain = parse_message(HEADERS + b"\r\n" + BODY)
    traced = parse_message(TRACE + HEADERS + TRACE + b"\r\n" + BODY)
    assert traced == plain
    assert plain.subject == "Température élevée on SRV1"
    assert plain.message_id == "<a1@client.example>"
    assert plain.date == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert "monitor@client.example" in plain.sender
    assert plain.text == "Disk C: is 99% full.\n"


def test_first_from_and_date_win_and_folds_are_joined():
    raw = (b"Date: Thu, 26 Nov 2026 10:00:00\r\n +0100\r\nDate: Fri, 27 Nov 2026 00:00:00 +0000\r\n"
           b"From: a@x.example\r\nFrom: b@x.example\r\nSubject: s\r\n\r\nbody\r\n")
    message = parse_message(raw)
    assert message.sender == "a@x.example"
    assert message.date == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def test_mail_after_an_mbox_separator_line_and_with_lf_only_lines_is_read():
    raw = (b"From nobody Wed Mar 30 12:15:10 2016\nReceived: by mx\nSubject: lf only\n"
           b"From: a@x.example\nMessage-ID: <lf@x>\n\nline one\nline two\n")
    message = parse_message(raw)
    assert (message.subject, message.sender, message.message_id) == ("lf only", "a@x.example",
                                                                      "<lf@x>")
    assert message.text == "line one\nline two\n"


def test_a_mail_of_trace_headers_only_keeps_its_body():
    assert parse_message(b"Received: by mx\r\nTo: a@x\r\n\r\nhello\r\n").text == "hello\n"


def test_a_malformed_header_line_ends_the_filtering():
    raw = (b"Received: by mx\r\nSubject: broken\r\nthis is no header\r\nTo: a@x\r\n"
           b"From: late@x.example\r\n\r\nbody\r\n")
    message = parse_message(raw)
    assert message.subject == "broken"
    assert "this is no header" in message.text  # as the standard parser reads it


def test_split_counts_the_header_fields_it_saw():
    raw = b"Received: by mx\r\n\tfolded\r\nTo: a@x\r\n\r\nhello\r\n"
    split = split_headers(raw)
    assert (split.fields, split.header + raw[split.body:]) == (2, b"\r\nhello\r\n")
    assert split_headers(b"\x00\xff no mail at all").fields == 0
