"""Authentication-Results (RFC 8601) as Google and Microsoft 365 write them: only the receiving
service's own header counts, and only dmarc=pass for the From domain or dkim=pass with
header.d equal to it."""

from __future__ import annotations

import pytest

from poller.mail.authresults import authenticated, parse, sender_domain

GOOGLE = ("mx.google.com; dkim=pass header.i=@client.example header.s=s1 header.b=abc; "
          "spf=pass (google.com: domain of a@client.example designates 1.2.3.4 as permitted "
          "sender) smtp.mailfrom=a@client.example; dmarc=pass (p=REJECT sp=REJECT dis=NONE) "
          "header.from=client.example")
M365 = ("spf=pass (sender IP is 1.2.3.4) smtp.mailfrom=client.example; dkim=pass (signature "
        "was verified) header.d=client.example;dmarc=pass action=none "
        "header.from=client.example;compauth=pass reason=100")
FORGED = "mx.google.com; dmarc=pass header.from=client.example"


def test_a_header_is_read_with_comments_and_quoted_strings():
    header = parse('mx.example 1; dkim=pass (good; really) header.d="client.example"; none')
    assert header.authserv_id == "mx.example"
    (dkim,) = header.results
    assert (dkim.method, dkim.result, dkim.properties) == ("dkim", "pass",
                                                           {"header.d": "client.example"})
    assert parse(M365).authserv_id == "" and parse(M365).results[0].method == "spf"


@pytest.mark.parametrize(("headers", "authserv_id", "domain", "ok"), [
    ((GOOGLE,), "mx.google.com", "client.example", True),
    ((GOOGLE,), "MX.Google.com", "CLIENT.example", True),
    ((GOOGLE,), "mx.google.com", "other.example", False),
    ((GOOGLE,), "mx.microsoft.com", "client.example", False),
    (("mx.google.com; dkim=pass header.d=client.example",), "mx.google.com", "client.example",
     True),
    (("mx.google.com; dkim=pass header.d=mailer.example; dmarc=fail header.from=client.example",),
     "mx.google.com", "client.example", False),
    (("evil.example; dmarc=pass header.from=client.example",), "mx.google.com", "client.example",
     False),
    ((M365,), "none", "client.example", True),
    ((M365.replace("dmarc=pass", "dmarc=fail").replace("dkim=pass", "dkim=none"),), "none",
     "client.example", False),
    # what a sender writes stands below what the receiving service adds on top
    ((M365.replace("=pass", "=fail"), M365), "none", "client.example", False),
    ((GOOGLE,), "none", "client.example", False),
    ((), "mx.google.com", "client.example", False),
])
def test_only_the_receiving_services_verdict_counts(headers, authserv_id, domain, ok):
    assert (authenticated(headers, authserv_id, domain) is None) is ok


def test_the_from_domain():
    assert sender_domain("Veeam <Reports@Backup.Client.Example>") == "backup.client.example"
    assert sender_domain("nobody") == ""
    assert authenticated((FORGED,), "mx.google.com", "") == "the From address has no domain"
