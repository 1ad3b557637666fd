"""`[imap] auth = xoauth2 | oauthbearer` end to end: a private Dovecot that checks OAuth2 tokens
itself and the local token server they come from (testkit.dovecot_oauth2), with the generic
(RFC 6749 client credentials) provider. The MSAL and google-auth providers:
test_oauth2_providers.py."""

from __future__ import annotations

import base64
import time

import pytest

from testkit.serving import Child, wait_until
from testkit.support import (
    OAUTH2_SECRET,
    alert_mail,
    oauth2_settings,
    poller,
    poller_json,
    run_subprocess,
    token,
    write_settings,
)

SEEN = b"\\Seen"
KEYWORD = b"$AtesProcessed"
VOLATILE = {"created", "updated", "completed", "uidvalidity", "mailbox"}  # differ between runs


def _mails() -> list[bytes]:
    return [
        alert_mail(subject="Disk full", tok=token(AlertID="Kaseya:1")),
        alert_mail(subject="Disk full again", tok=token(AlertID="Kaseya:1")),
        alert_mail(subject="Wrong key", tok=token(pw="not-the-key", AlertID="Kaseya:2")),
        b"Subject: lunch?\r\nMessage-ID: <lunch@x>\r\n\r\nPizza at noon.\r\n",
    ]


def _stable(value):
    """Return VALUE without the fields that differ between two runs of the same pass."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _logins(server, user: str, waiting_for: str = "PLAIN") -> set[str]:
    """Return the SASL mechanisms USER logged in with, from Dovecot's log (written a moment
    after the login: waits until WAITING_FOR is among them)."""
    def found() -> set[str]:
        return {line.split("method=")[1].split(",")[0]
                for line in server.log_path.read_text().splitlines()
                if f"Login: user=<{user}>" in line}
    wait_until(lambda: waiting_for in found(), 5, lambda: f"{waiting_for} not in {found()}")
    return found()


def _refusals(server, user: str, at_least: int = 0) -> list[str]:
    """Return Dovecot's reasons for refusing a token of USER, from its log (waits for AT_LEAST)."""
    def found() -> list[str]:
        return [line.split("oauth2 failed: ")[1]
                for line in server.log_path.read_text().splitlines()
                if f"oauth2({user}," in line and "oauth2 failed: " in line]
    wait_until(lambda: len(found()) >= at_least, 5, lambda: f"refusals: {found()}")
    return found()


def test_a_pass_with_xoauth2_processes_mail_exactly_as_with_a_password(tmp_path, oauth2_dovecot,
                                                                        capsys):
    outcomes, mails = {}, _mails()
    for auth in ("password", "xoauth2"):
        account = oauth2_dovecot.account()
        for raw in mails:
            account.append("INBOX", raw)
        folder = tmp_path / auth
        folder.mkdir()
        config = (write_settings(folder, account, mailbox={"on_success": "move"})
                  if auth == "password" else
                  oauth2_settings(folder, account, oauth2_dovecot, mailbox={"on_success": "move"}))
        assert poller(config, "once") == 0
        outcomes[auth] = (
            _stable(poller_json(config, capsys, "tickets")),
            _stable(poller_json(config, capsys, "messages")),
            {name: [flags for _, flags, _ in account.messages(name)]
             for name in sorted(account.folders())},
        )
        # PLAIN: the fixtures' logins
        if auth == "password":
            assert _logins(oauth2_dovecot, account.username) == {"PLAIN"}
        else:
            assert _logins(oauth2_dovecot, account.username, "XOAUTH2") == {"PLAIN", "XOAUTH2"}
    tickets, messages, folders = outcomes["xoauth2"]
    assert outcomes["password"] == outcomes["xoauth2"]
    assert [m["outcome"] for m in messages][::-1] == ["created", "appended", "quarantined", "skipped"]
    assert len(tickets) == 1 and folders["INBOX"] == [()]  # the mail without a token stays
    assert len(folders["Processed"]) == 2 and len(folders["Quarantine"]) == 1
    assert oauth2_dovecot.tokens.token_requests == 1


def test_oauthbearer_logs_in(tmp_path, oauth2_dovecot):
    account = oauth2_dovecot.account()
    account.append("INBOX", alert_mail())
    config = oauth2_settings(tmp_path, account, oauth2_dovecot, auth="oauthbearer")
    assert poller(config, "once") == 0
    ((_, flags, _),) = account.messages("INBOX")
    assert SEEN in flags and KEYWORD in flags
    assert _logins(oauth2_dovecot, account.username, "OAUTHBEARER") == {"PLAIN", "OAUTHBEARER"}


def test_a_wrong_secret_exits_3_at_once_with_the_providers_error(tmp_path, oauth2_dovecot,
                                                                 capsys):
    account = oauth2_dovecot.account()
    account.append("INBOX", alert_mail())
    config = oauth2_settings(tmp_path, account, oauth2_dovecot, secret="Wrong-S3cret-99",
                             retry={"attempts": "5", "initial_wait": "30"})
    capsys.readouterr()
    assert poller(config, "once") == 3  # a retry would have waited 30 s first
    error = capsys.readouterr().err
    assert "invalid_client: Invalid client secret provided." in error
    assert account.username in error and "generic token endpoint" in error
    assert "Wrong-S3cret-99" not in error and OAUTH2_SECRET not in error
    assert oauth2_dovecot.tokens.token_requests == 1
    assert _logins(oauth2_dovecot, account.username) == {"PLAIN"}  # the fixture's APPEND only
    ((_, flags, _),) = account.messages("INBOX")
    assert flags == ()


def test_a_token_for_another_mailbox_is_refused_after_one_fresh_token(tmp_path, oauth2_dovecot,
                                                                      capsys):
    account = oauth2_dovecot.account()
    account.append("INBOX", alert_mail())
    other = oauth2_dovecot.tokens.add_client("someone-else", secret=OAUTH2_SECRET)
    config = oauth2_settings(tmp_path, account, oauth2_dovecot, client_id=other,
                             retry={"attempts": "5", "initial_wait": "30"})
    capsys.readouterr()
    assert poller(config, "once") == 3
    error = capsys.readouterr().err
    assert f"refused the XOAUTH2 login of mailbox {account.username} twice" in error
    assert "a fresh token from the generic token endpoint" in error
    assert "AUTHENTICATIONFAILED" in error and '"status":"401"' in error  # the server's reason
    assert oauth2_dovecot.tokens.token_requests == 2  # the first token, and one fresh one
    assert _refusals(oauth2_dovecot, account.username, 2) == [
        f"Local validation failed: Username '{account.username}' did not match 'someone-else'"] * 2


def test_a_token_that_expires_before_its_holder_thinks_is_replaced_once(tmp_path,
                                                                       oauth2_dovecot, capsys):
    """The server refuses a cached token that expired early: one fresh token, and the pass
    goes on. Passes in one process (as under `serve`) share the cached token."""
    tokens = oauth2_dovecot.tokens
    account = oauth2_dovecot.account()
    account.append("INBOX", alert_mail(subject="First", tok=token(AlertID="Kaseya:1")))
    config = oauth2_settings(tmp_path, account, oauth2_dovecot)
    tokens.lifetime, tokens.reported_lifetime = 2, 3600  # expires in 2 s; the poller thinks 1 h
    assert poller(config, "once") == 0
    assert tokens.token_requests == 1
    tokens.lifetime = 3600
    time.sleep(3)  # the cached token has expired
    account.append("INBOX", alert_mail(subject="Second", tok=token(AlertID="Kaseya:2")))
    assert poller(config, "once") == 0
    assert tokens.token_requests == 2
    assert _refusals(oauth2_dovecot, account.username, 1) == [
        "Local validation failed: Token has expired"]
    assert poller(config, "once") == 0  # the fresh token is cached
    assert tokens.token_requests == 2
    assert [t["title"] for t in poller_json(config, capsys, "tickets")] == ["First", "Second"]


def test_a_token_about_to_expire_is_replaced_before_the_next_pass(tmp_path, oauth2_dovecot,
                                                                   monkeypatch):
    tokens = oauth2_dovecot.tokens
    account = oauth2_dovecot.account()
    config = oauth2_settings(tmp_path, account, oauth2_dovecot)
    # below the shortest lifetime believed (a minute), to keep the test short
    monkeypatch.setattr("poller.imap.token_providers.MIN_LIFETIME", 1.0)
    tokens.reported_lifetime = 2  # cached for half its life: 1 s
    assert poller(config, "once") == 0
    time.sleep(1.5)
    for _ in range(3):
        assert poller(config, "once") == 0
    assert tokens.token_requests == 2  # once more after 1 s, then from the cache
    assert _refusals(oauth2_dovecot, account.username) == []  # replaced before it was refused


def test_serve_shares_one_token_between_passes_and_the_idle_watcher(tmp_path, oauth2_dovecot):
    account = oauth2_dovecot.account()
    config = oauth2_settings(tmp_path, account, oauth2_dovecot,
                             schedule={"interval": "3600", "idle": "true"})
    with Child(config, "serve") as serve:
        serve.wait_for("waiting for new mail in 'INBOX' with IMAP IDLE")
        serve.wait_for("pass done")
        for n in range(2):  # the interval is an hour: IDLE starts these passes
            account.append("INBOX", alert_mail(tok=token(AlertID=f"Kaseya:{n}")))
            serve.wait_for("pass done", times=n + 2)
        assert serve.stop() == 0
    assert "created=1" in serve.log and all(SEEN in flags for _, flags, _ in
                                            account.messages("INBOX"))
    assert len(account.messages("INBOX")) == 2
    assert oauth2_dovecot.tokens.token_requests == 1  # 3 passes, 4 connections, 1 token


@pytest.mark.parametrize("status", [503, 429])
def test_a_busy_token_endpoint_is_retried_then_exits_3(tmp_path, oauth2_dovecot, capsys, status):
    account = oauth2_dovecot.account()
    config = oauth2_settings(tmp_path, account, oauth2_dovecot,
                             retry={"attempts": "3", "initial_wait": "0.05"})
    oauth2_dovecot.tokens.outage = status
    capsys.readouterr()
    assert poller(config, "once") == 3
    error = capsys.readouterr().err
    assert error.count("reconnecting in") == 2
    assert f"is unavailable: HTTP {status} temporarily_unavailable" in error
    assert oauth2_dovecot.tokens.token_requests == 3


def test_a_token_endpoint_that_is_down_is_transient(tmp_path, oauth2_dovecot, capsys):
    account = oauth2_dovecot.account()
    account.append("INBOX", alert_mail())
    config = oauth2_settings(tmp_path, account, oauth2_dovecot,
                             retry={"attempts": "3", "initial_wait": "0.05"})
    oauth2_dovecot.tokens.stop()
    capsys.readouterr()
    assert poller(config, "once") == 3
    error = capsys.readouterr().err
    assert error.count("reconnecting in") == 2 and "Connection refused" in error
    oauth2_dovecot.tokens.start()
    assert poller(config, "once") == 0
    ((_, flags, _),) = account.messages("INBOX")
    assert SEEN in flags


def test_a_server_that_cannot_check_the_token_now_is_transient(tmp_path, oauth2_dovecot,
                                                               capsys):
    """Dovecot answers NO [UNAVAILABLE] when a token names no user: it could not check it."""
    account = oauth2_dovecot.account()
    config = oauth2_settings(tmp_path, account, oauth2_dovecot,
                             retry={"attempts": "3", "initial_wait": "0.05"})
    oauth2_dovecot.tokens.omit = ("email",)
    capsys.readouterr()
    assert poller(config, "once") == 3
    error = capsys.readouterr().err
    assert error.count("reconnecting in") == 2
    assert "the server cannot check logins right now: [UNAVAILABLE]" in error
    assert oauth2_dovecot.tokens.token_requests == 1  # not refused: the token is kept


def test_a_server_without_the_mechanism_is_named(tmp_path, oauth2_dovecot, dovecot, capsys):
    account = dovecot.account()  # the password-only Dovecot: no AUTH=XOAUTH2
    client_id = oauth2_dovecot.tokens.add_client(account.username, secret=OAUTH2_SECRET)
    config = oauth2_settings(tmp_path, account, oauth2_dovecot, client_id=client_id)
    capsys.readouterr()
    assert poller(config, "once") == 3
    assert "does not offer AUTH=XOAUTH2; check [imap] auth" in capsys.readouterr().err
    assert oauth2_dovecot.tokens.token_requests == 0


def test_check_gets_a_token_then_logs_in_with_it(tmp_path, oauth2_dovecot, capsys):
    account = oauth2_dovecot.account()
    config = oauth2_settings(tmp_path, account, oauth2_dovecot)
    capsys.readouterr()
    assert poller(config, "check") == 0
    out = capsys.readouterr().out
    assert OAUTH2_SECRET not in out and "credential = ********" in out
    parts = [line.split()[:2] for line in out.splitlines() if line.startswith(("oauth2", "imap "))]
    assert parts == [["oauth2", "ok"], ["imap", "ok"]]
    assert f"as {account.username} with XOAUTH2" in out
    assert oauth2_dovecot.tokens.token_requests == 1


def test_check_says_the_token_step_failed(tmp_path, oauth2_dovecot, capsys):
    account = oauth2_dovecot.account()
    config = oauth2_settings(tmp_path, account, oauth2_dovecot, secret="Wrong-S3cret-99")
    capsys.readouterr()
    assert poller(config, "check") == 3
    out = capsys.readouterr().out
    (failed,) = [line for line in out.splitlines() if "FAILED" in line]
    assert failed.startswith("oauth2") and "invalid_client" in failed
    assert not any(line.startswith("imap ") for line in out.splitlines())


def test_no_token_or_secret_reaches_the_log_even_at_vv(tmp_path, oauth2_dovecot):
    tokens = oauth2_dovecot.tokens
    account = oauth2_dovecot.account()
    account.append("INBOX", alert_mail())
    other = tokens.add_client("someone-else", secret=OAUTH2_SECRET)
    runs = [run_subprocess(oauth2_settings(tmp_path, account, oauth2_dovecot, auth=auth), "-vv",
                           "once") for auth in ("xoauth2", "oauthbearer")]
    runs.append(run_subprocess(oauth2_settings(tmp_path, account, oauth2_dovecot,
                                               client_id=other), "-vv", "once"))
    assert [run.returncode for run in runs] == [0, 0, 3]
    log = "".join(run.stderr for run in runs)
    assert "AUTHENTICATE **REDACTED**" in log  # the IMAP trace was on
    assert len(tokens.minted) >= 4
    user = account.username
    for minted in tokens.minted:
        assert minted.split(".")[2] not in log  # the signature: the part nothing else shares
        for sasl in (f"user={user}\1auth=Bearer {minted}\1\1",
                     f"n,a={user},\1auth=Bearer {minted}\1\1"):
            assert base64.b64encode(sasl.encode()).decode() not in log
    assert OAUTH2_SECRET not in log
