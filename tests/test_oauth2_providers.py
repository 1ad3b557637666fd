"""The Microsoft (MSAL) and Google (google-auth) token providers, pointed at the local token
server the way a national cloud or a test points them elsewhere: [oauth2] authority for MSAL,
the service account file's token_uri (or token_url) for google-auth. The rest of the way to
the mailbox is the same as in test_oauth2.py."""

from __future__ import annotations

import json

from testkit.support import OAUTH2_SECRET, alert_mail, oauth2_settings, poller, run_subprocess
from testkit.token_server import client_certificate

SEEN = b"\\Seen"
GENERIC_ONLY = {"token_url": None, "scope": None}  # each provider's own default scope


def _microsoft(server, **keys: str | None) -> dict[str, str | None]:
    return {"provider": "microsoft", "authority": server.tokens.authority, **GENERIC_ONLY,
            **keys}


def _google(tmp_path, info: dict[str, str], **keys: str | None) -> dict[str, str | None]:
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps(info), encoding="utf-8")
    key_file.chmod(0o600)
    return {"provider": "google", "service_account_file": str(key_file), "client_id": None,
            "client_secret_file": None, **GENERIC_ONLY, **keys}


def _processed(account) -> bool:
    ((_, flags, _),) = account.messages("INBOX")
    return SEEN in flags


def test_msal_with_a_client_secret(tmp_path, oauth2_dovecot):
    account = oauth2_dovecot.account()
    account.append("INBOX", alert_mail())
    config = oauth2_settings(tmp_path, account, oauth2_dovecot, oauth2=_microsoft(oauth2_dovecot))
    assert poller(config, "once") == 0
    assert _processed(account)
    assert poller(config, "once") == 0  # the token is cached between passes in one process
    assert oauth2_dovecot.tokens.token_requests == 1


def _with_certificate(tmp_path, account, server, *, registered_matches: bool = True):
    """Return settings for MSAL with a certificate in app.pem; the app's registered certificate
    is that one, or (REGISTERED_MATCHES false) another."""
    pem, certificate = client_certificate()
    if not registered_matches:
        _, certificate = client_certificate()
    (tmp_path / "app.pem").write_text(pem, encoding="utf-8")
    (tmp_path / "app.pem").chmod(0o600)
    client_id = server.tokens.add_client(account.username, certificate=certificate)
    return oauth2_settings(tmp_path, account, server, oauth2=_microsoft(
        server, client_id=client_id, client_secret_file=None, client_certificate_file="app.pem"))


def test_msal_with_a_certificate(tmp_path, oauth2_dovecot):
    account = oauth2_dovecot.account()
    account.append("INBOX", alert_mail())
    assert poller(_with_certificate(tmp_path, account, oauth2_dovecot), "once") == 0
    assert _processed(account)


def test_msal_with_another_certificate_is_refused(tmp_path, oauth2_dovecot, capsys):
    account = oauth2_dovecot.account()
    config = _with_certificate(tmp_path, account, oauth2_dovecot, registered_matches=False)
    capsys.readouterr()
    assert poller(config, "once") == 3
    assert "refused the client: invalid_grant: Invalid JWT Signature." in capsys.readouterr().err
    assert oauth2_dovecot.tokens.token_requests == 1


def test_msal_with_a_wrong_secret_exits_3_at_once(tmp_path, oauth2_dovecot, capsys):
    account = oauth2_dovecot.account()
    config = oauth2_settings(tmp_path, account, oauth2_dovecot, secret="Wrong-S3cret-99",
                             oauth2=_microsoft(oauth2_dovecot),
                             retry={"attempts": "5", "initial_wait": "30"})
    capsys.readouterr()
    assert poller(config, "once") == 3
    error = capsys.readouterr().err
    assert f"OAuth2 for mailbox {account.username}: the microsoft token endpoint" in error
    assert "invalid_client: Invalid client secret provided." in error
    assert "Wrong-S3cret-99" not in error and OAUTH2_SECRET not in error
    assert oauth2_dovecot.tokens.token_requests == 1


def test_msal_with_an_unknown_tenant_exits_3(tmp_path, oauth2_dovecot, capsys):
    account = oauth2_dovecot.account()
    config = oauth2_settings(tmp_path, account, oauth2_dovecot, oauth2=_microsoft(
        oauth2_dovecot, authority=f"{oauth2_dovecot.tokens.base}/no-such-tenant"))
    capsys.readouterr()
    assert poller(config, "once") == 3
    assert "Unable to get authority configuration" in capsys.readouterr().err
    assert oauth2_dovecot.tokens.token_requests == 0


def test_google_service_account_with_domain_wide_delegation(tmp_path, oauth2_dovecot):
    account = oauth2_dovecot.account()
    account.append("INBOX", alert_mail())
    info = oauth2_dovecot.tokens.add_service_account(account.username)
    config = oauth2_settings(tmp_path, account, oauth2_dovecot, auth="oauthbearer",
                             oauth2=_google(tmp_path, info))
    assert poller(config, "once") == 0
    assert _processed(account)
    assert oauth2_dovecot.tokens.token_requests == 1


def test_google_token_url_overrides_the_key_files_token_uri(tmp_path, oauth2_dovecot):
    account = oauth2_dovecot.account()
    info = oauth2_dovecot.tokens.add_service_account(account.username)
    info["token_uri"] = "https://oauth2.invalid/token"  # never asked: token_url wins
    config = oauth2_settings(tmp_path, account, oauth2_dovecot, oauth2=_google(
        tmp_path, info, token_url=oauth2_dovecot.tokens.token_url))
    assert poller(config, "once") == 0
    assert oauth2_dovecot.tokens.token_requests == 1


def test_google_service_account_not_delegated_for_the_mailbox_exits_3(tmp_path, oauth2_dovecot,
                                                                      capsys):
    account = oauth2_dovecot.account()
    info = oauth2_dovecot.tokens.add_service_account("someone-else")
    config = oauth2_settings(tmp_path, account, oauth2_dovecot, oauth2=_google(tmp_path, info),
                             retry={"attempts": "5", "initial_wait": "30"})
    capsys.readouterr()
    assert poller(config, "once") == 3
    error = capsys.readouterr().err
    assert f"OAuth2 for mailbox {account.username}: the google token endpoint" in error
    assert "refused the client: unauthorized_client: Client is unauthorized" in error
    assert info["private_key"].splitlines()[1] not in error
    assert oauth2_dovecot.tokens.token_requests == 1


def test_no_token_or_secret_in_a_vv_log_with_msal_or_google(tmp_path, oauth2_dovecot):
    account = oauth2_dovecot.account()
    account.append("INBOX", alert_mail())
    info = oauth2_dovecot.tokens.add_service_account(account.username)
    logs = []
    for name, keys in (("msal", _microsoft(oauth2_dovecot)), ("google", _google(tmp_path, info))):
        (tmp_path / name).mkdir()
        run = run_subprocess(oauth2_settings(tmp_path / name, account, oauth2_dovecot,
                                             oauth2=keys), "-vv", "once")
        assert run.returncode == 0, run.stderr
        logs.append(run.stderr)
    log = "".join(logs)
    assert "AUTHENTICATE **REDACTED**" in log  # the IMAP trace was on
    assert oauth2_dovecot.tokens.issued == 2
    for minted in oauth2_dovecot.tokens.minted:
        assert minted.split(".")[2] not in log
    assert OAUTH2_SECRET not in log and info["private_key"].splitlines()[1] not in log
