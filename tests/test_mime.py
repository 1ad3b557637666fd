"""poller.mail.mime builds the same MIME tree as the standard library's parser.

Every object of the tree is compared attribute by attribute (headers, payloads, preamble,
epilogue, defects, default type, envelope line) with what email.parser makes of the same
bytes: for every fixture and corpus mail (as written, with LF and with CRLF line ends, and cut
in half), for the bench's synthetic mails, for shapes at the edges of the multipart rules, and
for a few thousand mails mangled at random (a fixed seed). The mails that are cut into parts
here are counted, so that the comparison cannot pass by handing everything to the standard
parser.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import random
from pathlib import Path

import pytest

from poller.mail import mime
from poller.mail.headers import split_headers
from testkit.synthetic import generate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FILES = sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix not in (".json", ".py")
               and p.name != "SOURCES.md" and "databases" not in p.parts)


def _standard(mail: bytes) -> email.message.Message:
    return email.parser.BytesParser(policy=email.policy.compat32).parsebytes(mail)


def _shape(message: email.message.Message) -> object:
    """Every attribute of message and of each part under it, defects as (type, text)."""
    state = dict(vars(message))
    state["defects"] = [(type(d).__name__, str(d)) for d in state["defects"]]
    payload = state.pop("_payload")
    if isinstance(payload, list):
        payload = [_shape(part) for part in payload]
    return state, payload


def _check(raw: bytes) -> bool:
    """Assert that mime_tree gives the standard parser's tree; return whether it cut raw up
    itself (rather than hand it to the standard parser)."""
    split = split_headers(raw)  # the header lines the tree is made of, and where the body starts
    expected = _shape(_standard(split.header + raw[split.body:]))
    assert _shape(mime.mime_tree(split.header, raw, split.body)) == expected
    cut = mime._cut(split.header, raw, split.body)
    return cut is not None


def _variants(raw: bytes) -> list[bytes]:
    lf = raw.replace(b"\r\n", b"\n")
    return [raw, lf, lf.replace(b"\n", b"\r\n"), raw[:len(raw) // 2]]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_and_corpus_mail_gives_the_standard_tree(path):
    for raw in _variants(path.read_bytes()):
        _check(raw)


def test_fixtures_and_corpus_are_mostly_cut_here():
    cut = [_check(path.read_bytes()) for path in FILES]
    assert sum(cut) > len(cut) // 2


def test_synthetic_alerts_are_all_cut_here_and_give_the_standard_tree():
    mails = generate(600).mails
    assert all(_check(raw) for raw in mails)
    assert sum(b"multipart/" in raw for raw in mails) > 100


BOUNDARY = "=_b"
HEAD = f'Subject: s\nContent-Type: multipart/alternative; boundary="{BOUNDARY}"\n\n'
PLAIN = "Content-Type: text/plain\n\nbody\n"


@pytest.mark.parametrize("body,cut", [
    (f"--{BOUNDARY}\n{PLAIN}--{BOUNDARY}--\n", True),
    (f"preamble\n\n--{BOUNDARY}\n{PLAIN}--{BOUNDARY}\n{PLAIN}--{BOUNDARY}--\nepilogue\n", True),
    (f"--{BOUNDARY} \t\n{PLAIN}--{BOUNDARY}-- \n\nepilogue", True),  # spaces after boundaries
    (f"--{BOUNDARY}\r{PLAIN}\r--{BOUNDARY}--", True),  # CR line ends, no final line break
    (f"--{BOUNDARY}\nbody without a header\n--{BOUNDARY}--\n", True),
    (f"--{BOUNDARY}\nContent-Type: text/plain\n--{BOUNDARY}--\n", True),  # header, no body
    (f"--{BOUNDARY}\n\n--{BOUNDARY}--\n", True),  # an empty part
    (f"--{BOUNDARY}\nFrom someone\n\nbody\n--{BOUNDARY}--\n", True),
    (f"--{BOUNDARY}\nContent-Type: text/plain\nnot a header\n\nbody\n--{BOUNDARY}--\n", True),
    (f"--{BOUNDARY}\nContent-Type: text/plain\nFrom x\n\nbody\n--{BOUNDARY}--\n", True),
    (f"--{BOUNDARY}\n\nno header\r\n\r\n--{BOUNDARY}--\n", True),
    (f"--{BOUNDARY}\n folded first\n\nbody\n--{BOUNDARY}--\n", True),
    (f"--{BOUNDARY}\n:no name\n\nbody\n--{BOUNDARY}--\n", True),
    (f"--{BOUNDARY}\nFrom x\nContent-Type: text/html\n\nbody\n--{BOUNDARY}--\n", True),
    (f"--{BOUNDARY}\nContent-Type: text/plain;\n charset=\"utf-8\"\n\n\xe9\n--{BOUNDARY}--\n",
     True),
    (f"--{BOUNDARY}\n{PLAIN}--{BOUNDARY}X\nstill the part\n--{BOUNDARY}--\n", True),
    # only CR and LF break lines, not form feeds and the like
    (f"--{BOUNDARY}\n{PLAIN}a\x0b\x0c\x1c\x1d\x1e--{BOUNDARY}--\n--{BOUNDARY}--\n", True),
    (f"--{BOUNDARY}\n{PLAIN}", False),  # no close boundary
    ("no boundary at all\n", False),
    (f"--{BOUNDARY}--\n{PLAIN}", False),  # the close boundary first
    (f"--{BOUNDARY}\n--{BOUNDARY}\n{PLAIN}--{BOUNDARY}--\n", False),  # repeated boundary
    (f"--{BOUNDARY}\n{PLAIN}--{BOUNDARY}--\n--{BOUNDARY}\n{PLAIN}", False),  # after the close
    (f"--{BOUNDARY}\nContent-Type: message/rfc822\n\nSubject: inner\n\nx\n--{BOUNDARY}--\n",
     False),
    (f"--{BOUNDARY}\nContent-Type: multipart/mixed; boundary=in\n\n--in\n{PLAIN}--in--\n"
     f"--{BOUNDARY}--\n", False),
])
def test_multipart_shapes_give_the_standard_tree(body, cut):
    for raw in _variants((HEAD + body).encode()):
        _check(raw)
    assert _check((HEAD + body).encode()) is cut


@pytest.mark.parametrize("head", [
    "Subject: s\nContent-Type: multipart/digest; boundary=b\n\n",
    "Subject: s\nContent-Type: multipart/mixed\n\n",  # no boundary
    "Subject: s\nContent-Type: multipart/mixed; boundary=b\nContent-Transfer-Encoding: base64\n\n",
    "Subject: s\nContent-Type: message/rfc822\n\n",
    "Subject: s\nFrom x\n\n",  # an envelope line the parser gives back to the body
    "Subject: s\n not a header\nbroken line\n\n",
    "Subject: s\r\r\nContent-Type: text/plain\n\n",  # a CR the split does not see as a break
    " folded first\nSubject: s\n\n",
    ":no name\nSubject: s\n\n",
    "Subject: s\nX-Fold:\n\tContent-Type: text/html\n\n",
])
def test_shapes_left_to_the_standard_parser_give_its_tree(head):
    raw = (head + "--b\nContent-Type: text/plain\n\nx\n--b--\n").encode()
    for variant in _variants(raw):
        _check(variant)


def test_mangled_mail_gives_the_standard_tree():
    rng = random.Random(17)
    pool = generate(100, seed=5).mails + [p.read_bytes() for p in FILES if p.suffix == ".eml"]
    pieces = [b"--", b"\r\n", b"\n", b"\r", b" ", b"\t", b"-", b'"', b";", b"boundary=",
              b"Content-Type: multipart/mixed; boundary=x\n", b"--x\n", b"--x--\n",
              b"Content-Type: message/rfc822\n", b"\xff", b"From x\n", b":"]
    cut = 0
    for _ in range(3000):
        raw = bytearray(rng.choice(pool))
        for _ in range(rng.randint(1, 5)):
            at = rng.randrange(len(raw) + 1)
            if rng.random() < 0.6:
                raw[at:at] = rng.choice(pieces)
            else:
                del raw[at:at + rng.randint(1, 30)]
        cut += _check(bytes(raw))
    assert cut > 1000
