"""The facts parse_message reads once per part are those the standard library's methods give.

poller.mail.message parses a part's Content-Type parameters once and takes its filename and
charset from them; for every header shape below (RFC 2231 values and continuations, quoting,
case, a name only in Content-Type, a filename in Content-Disposition, charsets that are not
ASCII or not known) they must equal Message.get_filename() and get_content_charset().
"""

from __future__ import annotations

import email.message
import email.policy

import pytest

from poller.mail.message import _charset, _filename

CONTENT_TYPES = [
    None,
    "text/plain",
    "text/plain; charset=utf-8",
    'text/plain; charset="ISO-8859-1"; name="report.txt"',
    "text/plain; CHARSET=Windows-1252; NAME=a.txt",
    "text/plain; charset*=us-ascii'en'utf-8",
    "text/plain; charset*=utf-8''%C3%A9",  # a charset name that is not ASCII
    "text/plain; charset*=unknown-charset''abc",
    "text/plain; charset*=utf-16''koi8-r",  # read in the charset it names
    "text/plain; charset=\"\"",
    "text/plain; charset=utf-8; charset=latin-1",  # the first wins
    "application/pdf; name*0=\"very long \"; name*1=\"name.pdf\"",
    "application/pdf; name*=utf-8''%E2%82%AC%20report.pdf",
    "application/pdf; name*=iso-8859-1'de'%FCber.pdf",
    "text/plain; name=\"  spaced.txt  \"",
    "text/plain; ;; =x; name",
]
DISPOSITIONS = [
    None,
    "inline",
    "attachment",
    'attachment; filename="a b.pdf"',
    "attachment; FILENAME*=utf-8''%C3%BC.txt",
    'inline; filename*0="x"; filename*1="y.txt"',
]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("disposition", DISPOSITIONS)
def test_filename_and_charset_are_the_standard_librarys(content_type, disposition):
    part = email.message.Message(policy=email.policy.compat32)
    if content_type is not None:
        part["Content-Type"] = content_type
    if disposition is not None:
        part["Content-Disposition"] = disposition
    filename, params = _filename(part)
    assert filename == part.get_filename()
    assert params is None or params == part.get_params()
    charset = _charset(part.get_params() if params is None else params)
    assert charset == part.get_content_charset()
