"""Webhook transport: the URL's path (where chat and automation webhooks keep their token)
masked in every message and listing, http:// to another host warned about at every start,
[webhook] cafile for a receiver with a private CA, and X-Ates-Timestamp covered by the
signature. Real receivers on 127.0.0.1, one of them over HTTPS."""

from __future__ import annotations

import hashlib
import hmac
import logging
import ssl
import time

import pytest

from poller.config import load_settings
from poller.service.webhooks import sign
from testkit.local import make_certificates
from testkit.support import alert_mail, poller, token, write_settings
from testkit.webhook_receiver import Receiver
from testkit.webhooks import SECRET, HookedBox, webhook_section

PATH_TOKEN = "T0KEN-b7e1-in-the-path"


def alert(alert_id: str = "1") -> bytes:
    return alert_mail(tok=token(CustomerID="Kaseya:100", AlertID=f"Kaseya:{alert_id}"))


def test_the_urls_path_is_masked_in_log_lines_listings_and_check(tmp_path, caplog, capsys):
    with Receiver(SECRET, path=f"/hooks/{PATH_TOKEN}") as receiver:
        box = HookedBox(tmp_path, receiver)
        receiver.answers = [500, 500]
        box.mailbox.add(alert())
        box.run()
        with caplog.at_level(logging.INFO):
            box.deliver()
        capsys.readouterr()
        poller(box.config, "outbox", "--json")
        poller(box.config, "check", "--webhook-ping")
        shown = caplog.text + capsys.readouterr().out + str(box.outbox())
    assert "answered HTTP 500" in shown and f"127.0.0.1:{receiver.port}/********" in shown
    assert PATH_TOKEN not in shown


@pytest.mark.parametrize(("url", "warned"), [
    ("http://rmm.example.net/hooks", True), ("http://10.0.0.7:8080/hooks", True),
    ("https://rmm.example.net/hooks", False), ("http://127.0.0.1:9/hooks", False),
    ("http://localhost/hooks", False), ("http://[::1]:9/hooks", False)])
def test_http_to_another_host_is_warned_about_at_every_start(tmp_path, caplog, url, warned):
    config = write_settings(tmp_path, None, webhook={"url": url + "/" + PATH_TOKEN,
                                                     "secret": "s"})
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="poller.config"):
            load_settings(config)
        lines = [r.getMessage() for r in caplog.records if "[webhook] url" in r.getMessage()]
        assert len(lines) == (1 if warned else 0)
        assert all("plain text" in line and PATH_TOKEN not in line for line in lines)


def test_a_receiver_with_a_private_ca_needs_cafile(tmp_path):
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    cafile = make_certificates(tls_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_dir / "server.crt", tls_dir / "server.key")
    with Receiver(SECRET, tls=context) as receiver:
        (tmp_path / "a").mkdir()
        untrusting = HookedBox(tmp_path / "a", receiver)
        untrusting.mailbox.add(alert())
        untrusting.run()
        assert untrusting.deliver().failed == 1
        assert "CERTIFICATE_VERIFY_FAILED" in untrusting.outbox()[0]["last_error"]
        (tmp_path / "b").mkdir()
        trusting = HookedBox(tmp_path / "b", receiver, webhook={"cafile": str(cafile)})
        trusting.mailbox.add(alert())
        trusting.run()
        assert len(trusting.deliver().delivered) == 1
        assert receiver.taken[0].signed


def test_the_timestamp_is_signed_with_the_body(tmp_path, receiver):
    box = HookedBox(tmp_path, receiver)
    box.mailbox.add(alert())
    box.run()
    before = int(time.time())
    box.deliver()
    (taken,) = receiver.taken
    assert before - 1 <= int(taken.timestamp) <= time.time() + 1
    signed = taken.timestamp.encode() + b"." + taken.raw
    assert taken.signature == "sha256=" + hmac.new(SECRET.encode(), signed,
                                                   hashlib.sha256).hexdigest()
    assert taken.signature == sign(SECRET, taken.timestamp, taken.raw)
    # a replay under a fresh timestamp, or of the body alone, does not match
    assert sign(SECRET, str(int(taken.timestamp) + 600), taken.raw) != taken.signature
    assert "sha256=" + hmac.new(SECRET.encode(), taken.raw,
                                hashlib.sha256).hexdigest() != taken.signature


def test_webhook_section_keys_are_read(tmp_path, receiver):
    settings = load_settings(write_settings(tmp_path, None, webhook=webhook_section(
        receiver, budget="12", max_attempts="3", keep_days="2.5")))
    hook = settings.webhook
    assert (hook.budget, hook.max_attempts, hook.keep_days, hook.cafile) == (12, 3, 2.5, None)
    defaults = load_settings(write_settings(tmp_path, None, webhook={"url": receiver.url,
                                                                     "secret": "s"})).webhook
    assert (defaults.budget, defaults.max_attempts, defaults.keep_days) == (30, 10, 30)
