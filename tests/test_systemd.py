"""The systemd units in contrib/systemd: valid for systemd, and hardened as README promises;
the templates (ates-poller@NAME) read one settings file per mailbox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from testkit.support import REPO

UNITS = sorted(p for p in (REPO / "contrib" / "systemd").iterdir()
               if p.suffix in (".service", ".timer"))
INSTALLED = "/opt/ates-poller/bin/poller"


def test_the_units_are_there():
    assert [u.name for u in UNITS] == ["ates-poller-once.service", "ates-poller-once.timer",
                                       "ates-poller-once@.service", "ates-poller-once@.timer",
                                       "ates-poller-web.service", "ates-poller.service",
                                       "ates-poller@.service"]


def test_units_pass_systemd_analyze_verify(tmp_path):
    # verify checks that ExecStart exists: point it at this checkout's poller.
    poller = Path(sys.executable).with_name("poller")
    for unit in UNITS:
        text = unit.read_text().replace(INSTALLED, str(poller if poller.exists() else
                                                       sys.executable))
        (tmp_path / unit.name).write_text(text)
    # a template is verified as an instance of it, e.g. ates-poller@kaseya-eu.service
    names = [u.name.replace("@.", "@kaseya-eu.") for u in UNITS]
    result = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / n) for n in names)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


@pytest.mark.parametrize("unit", [u for u in UNITS if u.suffix == ".service"],
                         ids=lambda u: u.name)
def test_services_are_hardened_and_get_secrets_as_credentials(unit):
    lines = set(unit.read_text().splitlines())
    mailbox = "%i." if "@" in unit.name else ""  # a template: one settings file per mailbox
    for setting in ("NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict",
                    "DynamicUser=yes", "StateDirectory=ates-poller", "MemoryMax=512M",
                    f"LoadCredential=imap-password:/etc/ates-poller/{mailbox}imap-password",
                    "LoadCredential=ates-password:/etc/ates-poller/ates-password",
                    "Environment=POLLER_IMAP_PASSWORD_FILE=${CREDENTIALS_DIRECTORY}/imap-password",
                    "Environment=POLLER_DATABASE_URL=sqlite:////var/lib/ates-poller/tickets.db"):
        assert setting in lines
    settings = "%i.ini" if mailbox else "settings.ini"
    command = next(c for c in ("once", "web", "serve") if c in unit.name or c == "serve")
    assert f"ExecStart={INSTALLED} --config /etc/ates-poller/{settings} {command}" in lines



@pytest.mark.parametrize("unit", [u for u in UNITS if u.suffix == ".service"],
                         ids=lambda u: u.name)
def test_every_service_carries_the_webhook_and_oauth2_credential_lines(unit):
    lines = set(unit.read_text().splitlines())
    mailbox = "%i." if "@" in unit.name else ""
    for setting in ("#LoadCredential=webhook-secret:/etc/ates-poller/webhook-secret",
                    "#Environment=POLLER_WEBHOOK_SECRET_FILE=${CREDENTIALS_DIRECTORY}/"
                    "webhook-secret",
                    f"#LoadCredential=oauth2-secret:/etc/ates-poller/{mailbox}oauth2-secret",
                    "#Environment=POLLER_OAUTH2_CLIENT_SECRET_FILE=${CREDENTIALS_DIRECTORY}/"
                    "oauth2-secret"):
        assert setting in lines, setting


@pytest.mark.parametrize(("files", "instance", "expected"), [
    (("imap-password", "ates-password"), None,
     ["imap-password:{etc}/imap-password", "ates-password:{etc}/ates-password"]),
    (("kaseya.oauth2-secret", "ates-password", "webhook-secret"), "kaseya",
     ["oauth2-secret:{etc}/kaseya.oauth2-secret", "ates-password:{etc}/ates-password",
      "webhook-secret:{etc}/webhook-secret"]),
])
def test_the_admin_script_hands_over_the_credentials_whose_files_exist(tmp_path, files,
                                                                      instance, expected):
    etc, bin_dir = tmp_path / "etc", tmp_path / "bin"
    etc.mkdir()
    bin_dir.mkdir()
    for name in files:
        (etc / name).write_text("secret\n")
    fake = bin_dir / "systemd-run"  # prints what it was given, one argument a line
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    argv = ["sh", str(REPO / "contrib" / "systemd" / "ates-poller-admin"),
            *(["--instance", instance] if instance else []), "status"]
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "ATES_POLLER_ETC": str(etc), "SUDO_USER": "alice"}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    args = out.splitlines()
    loaded = [a.removeprefix("--property=LoadCredential=") for a in args
              if a.startswith("--property=LoadCredential=")]
    assert loaded == [e.format(etc=etc) for e in expected]
    for item in expected:
        name = item.split(":")[0]
        assert any(a.startswith("--setenv=POLLER_") and a.endswith("}/" + name) for a in args)
    settings = f"{etc}/{instance}.ini" if instance else f"{etc}/settings.ini"
    assert args[-3:] == ["--config", settings, "status"]
