"""[imap] auth and the [oauth2] section: defaults per provider, secrets from files only (0600
checked), precise errors, nothing secret in what `check` shows."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from poller.config import load_settings
from poller.config import oauth2 as oauth2_config
from poller.errors import ConfigError
from testkit.token_server import client_certificate

BASE = """
[imap]
host = outlook.office365.com
username = helpdesk@contoso.example
auth = xoauth2
[ates]
password = ates-secret
[oauth2]
"""
SECRET = "Client-S3cret~abc"


def load(tmp_path: Path, oauth2: str, *, environ: dict[str, str] | None = None,
         base: str = BASE):
    path = tmp_path / "settings.ini"
    path.write_text(base + oauth2, encoding="utf-8")
    path.chmod(0o600)  # it holds the ATES password
    return load_settings(path, environ=environ or {})


def secret_file(tmp_path: Path, name: str = "secret", text: str = f"{SECRET}\nignored\n",
                mode: int = 0o600) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_microsoft_defaults_to_the_public_cloud_and_the_exchange_scope(tmp_path):
    secret_file(tmp_path)
    settings = load(tmp_path, "provider = microsoft\nclient_id = 1111\n"
                              "tenant = contoso.onmicrosoft.com\nclient_secret_file = secret\n")
    o = settings.imap.oauth2
    assert settings.imap.auth == "xoauth2" and settings.imap.password == ""
    assert o.authority == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    assert o.scope == "https://outlook.office365.com/.default"
    assert o.credential == SECRET  # the first line
    assert o.client_secret_file == str(tmp_path / "secret")


def test_microsoft_authority_for_a_national_cloud(tmp_path):
    secret_file(tmp_path)
    o = load(tmp_path, "provider = microsoft\nclient_id = 1111\nclient_secret_file = secret\n"
                       "authority = https://login.microsoftonline.us/contoso.onmicrosoft.us/\n"
                       "scope = https://outlook.office365.us/.default\n").imap.oauth2
    assert o.authority == "https://login.microsoftonline.us/contoso.onmicrosoft.us"
    assert o.scope == "https://outlook.office365.us/.default"


def test_microsoft_with_a_certificate(tmp_path):
    pem, _ = client_certificate()
    secret_file(tmp_path, "app.pem", pem)
    o = load(tmp_path, "provider = microsoft\nclient_id = 1111\ntenant = t\n"
                       "client_certificate_file = app.pem\n").imap.oauth2
    assert o.credential == pem.strip()


def test_google_takes_the_token_endpoint_from_the_key_file(tmp_path):
    info = {"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com",
            "private_key": "-----BEGIN PRIVATE KEY-----\n...", "token_uri":
            "https://oauth2.googleapis.com/token"}
    secret_file(tmp_path, "sa.json", json.dumps(info))
    o = load(tmp_path, "provider = google\nservice_account_file = sa.json\n").imap.oauth2
    assert o.scope == "https://mail.google.com/"
    assert o.token_url == "https://oauth2.googleapis.com/token"
    assert json.loads(o.credential) == info


def test_password_auth_reads_no_oauth2_section(tmp_path):
    settings = load(tmp_path, "provider = nonsense\n",
                    base=BASE.replace("auth = xoauth2", "password = imap-secret"))
    assert settings.imap.auth == "password" and settings.imap.oauth2 is None


def test_the_secret_comes_from_the_environment_too(tmp_path):
    secret_file(tmp_path, "elsewhere")
    o = load(tmp_path, "provider = generic\nclient_id = c\nscope = imap\n"
                       "token_url = https://idp.example/token\n",
             environ={"POLLER_OAUTH2_CLIENT_SECRET_FILE": str(tmp_path / "elsewhere")}
             ).imap.oauth2
    assert o.credential == SECRET


@pytest.mark.parametrize(("oauth2", "message"), [
    ("", "[oauth2] provider: is required with [imap] auth = xoauth2"),
    ("provider = yahoo\n", "[oauth2] provider: must be one of microsoft, google, generic"),
    ("provider = microsoft\nclient_id = c\ntenant = t\nclient_secret = " + SECRET + "\n",
     "[oauth2] client_secret: secrets are read from files only"),
    ("provider = microsoft\nclient_id = c\nclient_secret_file = secret\n",
     "[oauth2] tenant: is required"),
    ("provider = microsoft\ntenant = t\nclient_secret_file = secret\n",
     "[oauth2] client_id: is required"),
    ("provider = microsoft\nclient_id = c\ntenant = t\n",
     "[oauth2] client_secret_file: is required (or client_certificate_file)"),
    ("provider = microsoft\nclient_id = c\ntenant = t\nclient_secret_file = secret\n"
     "client_certificate_file = secret\n", "set either it or client_secret_file, not both"),
    ("provider = microsoft\nclient_id = c\ntenant = t\nclient_certificate_file = secret\n",
     "[oauth2] client_certificate_file: expected the certificate and its unencrypted"),
    ("provider = microsoft\nclient_id = c\nclient_secret_file = secret\n"
     "authority = https://login.microsoftonline.com\n", "[oauth2] authority: expected https://"),
    ("provider = microsoft\nclient_id = c\ntenant = t\nclient_secret_file = secret\n"
     "token_url = https://x.example/t\n", "[oauth2] token_url: is not used with provider = "
                                          "microsoft"),
    ("provider = generic\nclient_id = c\nclient_secret_file = secret\nscope = s\n",
     "[oauth2] token_url: is required"),
    ("provider = generic\nclient_id = c\nclient_secret_file = secret\n"
     "token_url = https://x.example/t\n", "[oauth2] scope: is required"),
    ("provider = generic\nclient_id = c\nclient_secret_file = secret\nscope = s\n"
     "token_url = http://x.example/t\n", "[oauth2] token_url: expected an https:// URL"),
    ("provider = generic\nclient_id = c\nclient_secret_file = missing\nscope = s\n"
     "token_url = https://x.example/t\n", "[oauth2] client_secret_file: cannot read"),
    ("provider = generic\nclient_id = c\nclient_secret_file = secret\nscope = s\n"
     "token_url = https://x.example/t\ncafile = /nonexistent/ca.pem\n",
     "[oauth2] cafile: /nonexistent/ca.pem does not exist"),
    ("provider = google\n", "[oauth2] service_account_file: is required"),
    ("provider = google\nservice_account_file = secret\n",
     "[oauth2] service_account_file: not a service account JSON key file"),
    ("provider = google\nservice_account_file = secret\nclient_id = c\n",
     "[oauth2] client_id: is not used with provider = google"),
])
def test_bad_oauth2_settings_name_the_key(tmp_path, oauth2, message):
    secret_file(tmp_path)
    with pytest.raises(ConfigError) as error:
        load(tmp_path, oauth2)
    assert message in str(error.value)
    assert SECRET not in str(error.value)


def test_a_provider_whose_library_is_missing_names_the_extra(tmp_path, monkeypatch):
    secret_file(tmp_path)
    monkeypatch.setattr(oauth2_config, "_installed", lambda module: module != "msal")
    with pytest.raises(ConfigError, match=r"microsoft needs the msal package: pip install "
                                          r"'ates-poller\[m365\]'"):
        load(tmp_path, "provider = microsoft\nclient_id = c\ntenant = t\n"
                       "client_secret_file = secret\n")


def test_a_secret_file_others_can_read_is_warned_about(tmp_path, caplog):
    secret_file(tmp_path, mode=0o644)
    oauth2 = "provider = microsoft\nclient_id = c\ntenant = t\nclient_secret_file = secret\n"
    with caplog.at_level(logging.WARNING, logger="poller"):
        load(tmp_path, oauth2)
    (record,) = [r for r in caplog.records if "readable by other users" in r.getMessage()]
    assert str(tmp_path / "secret") in record.getMessage() and "chmod 600" in record.getMessage()
    assert SECRET not in caplog.text

    caplog.clear()
    (tmp_path / "secret").chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="poller"):
        load(tmp_path, oauth2)
    assert "readable by other users" not in caplog.text


def test_redacted_settings_show_the_files_but_not_the_secret(tmp_path):
    secret_file(tmp_path)
    settings = load(tmp_path, "provider = microsoft\nclient_id = c\ntenant = t\n"
                              "client_secret_file = secret\n")
    shown = settings.redacted()
    assert shown["oauth2"]["credential"] == "********"
    assert shown["oauth2"]["client_secret_file"] == str(tmp_path / "secret")
    assert shown["imap"]["auth"] == "xoauth2" and "oauth2" not in shown["imap"]
    assert list(shown)[:2] == ["imap", "oauth2"]
    assert SECRET not in repr(shown) and SECRET not in repr(settings)
