"""A private Dovecot IMAP server for integration tests and benchmarks (no pytest needed).

``Dovecot`` runs ``dovecot -F -c <workdir>/dovecot.conf`` as a child process with a
configuration written from scratch: nothing is read from /etc/dovecot and the system service
is never touched. It listens on 127.0.0.1 only, on two ports picked at run time: ``port``
(plain IMAP, STARTTLS offered, LOGIN allowed without TLS) and ``ssl_port`` (implicit TLS),
with a certificate from a throw-away CA (``cafile``). Each user has a passwd-file and a
maildir of its own. Works as root (mail is then owned by ``nobody``, as Dovecot refuses to
access mail as UID 0) and as a normal user.

    with Dovecot() as server:
        account = server.account()
        account.append("INBOX", b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
        print(account.messages("INBOX"))
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import tempfile
from pathlib import Path

from testkit.imapserver import (
    HOST,
    PROBE_USER,
    ImapAccount,
    ImapServer,
    make_certificates,
    searchable_by_others,
)

__all__ = ["Dovecot", "ImapAccount"]

# Unix socket paths are limited to 108 bytes and Dovecot puts sockets up to
# ~25 characters deep below base_dir ("token-login/imap-urlauth"), so a
# base_dir longer than this goes to a short directory of its own under /tmp.
MAX_BASE_DIR_LEN = 60

# Dovecot refuses to access mail as root, so as root mail belongs to the first
# of these users that exists.
ROOT_MAIL_USERS = ("nobody", "dovenull", "dovecot")


def find_dovecot() -> str:
    """Return the path of the dovecot binary, or raise RuntimeError."""
    path = shutil.which("dovecot")
    if path is None and os.access("/usr/sbin/dovecot", os.X_OK):
        path = "/usr/sbin/dovecot"
    if path is None:
        raise RuntimeError("dovecot not found; install Debian's dovecot-imapd")
    return path


class Dovecot(ImapServer):
    """A private Dovecot instance listening on 127.0.0.1 (see ImapServer for the lifecycle).

    Its namespace is Dovecot's stock one: no prefix, '/' between levels.
    """

    name = "dovecot"
    prefix = "dovecot-"
    # SASL mechanisms offered; testkit.dovecot_oauth2 adds XOAUTH2 and OAUTHBEARER.
    auth_mechanisms = "plain login"

    def __init__(self, workdir: Path | None = None) -> None:
        self._binary = find_dovecot()
        super().__init__(workdir)
        self.config_path = self.workdir / "dovecot.conf"
        self.passwd_dir = self.workdir / "passwd.d"
        self.log_path = self.workdir / "dovecot.log"
        self.stderr_path = self.workdir / "dovecot.stderr"
        self.mail_dir = self.workdir / "mail"
        self.state_dir = self.workdir / "state"
        base_dir = self.workdir / "run"
        self._own_base_dir = len(str(base_dir)) > MAX_BASE_DIR_LEN
        if self._own_base_dir:
            short_tmp = "/tmp" if os.path.isdir("/tmp") else None
            base_dir = Path(tempfile.mkdtemp(prefix="dcv-", dir=short_tmp))
        self.base_dir = base_dir

    def close(self) -> None:
        """Stop the server and remove the directories this object created."""
        super().close()
        if self._own_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def _command(self) -> list[str]:
        return [self._binary, "-F", "-c", str(self.config_path)]

    def _create_user(self, name: str, password: str) -> None:
        """Each user gets a passwd-file of its own (``passwd.d/<name>``): Dovecot looks a file
        up by user name, so a new user can log in at once."""
        self._write_passwd(name, password)

    # -- internals -----------------------------------------------------------

    def _prepare(self) -> None:
        """Create directories, certificates, the probe user and the configuration."""
        for path in (self.mail_dir, self.passwd_dir, self.state_dir, self.tls_dir, self.base_dir):
            path.mkdir(parents=True, exist_ok=True)
        if not self.cafile.exists():
            make_certificates(self.tls_dir)
        if os.geteuid() == 0:
            self._prepare_for_root()
        self._write_passwd(PROBE_USER, self._probe_password)
        self._write_config()

    def _mail_owner(self) -> tuple[int, int]:
        """Return the (uid, gid) that owns and accesses the mail."""
        if os.geteuid() != 0:
            return os.geteuid(), os.getegid()
        for name in ROOT_MAIL_USERS:
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            return entry.pw_uid, entry.pw_gid
        raise RuntimeError(f"running as root needs one of the users {ROOT_MAIL_USERS}")

    def _prepare_for_root(self) -> None:
        """As root, let Dovecot's unprivileged processes reach their files.

        The auth process (user "dovecot") reads the passwd-files and the mail
        processes (user "nobody") write the mail directory, so the work
        directory and its parents must be searchable by others.
        """
        uid, gid = self._mail_owner()
        if self._owns_workdir:
            self.workdir.chmod(0o755)
        searchable_by_others(self.workdir, "Dovecot")
        os.chown(self.mail_dir, uid, gid)
        self.mail_dir.chmod(0o700)

    def _write_passwd(self, name: str, password: str) -> None:
        """Write the passwd-file of one user atomically.

        (A single shared file is re-read at most once a second and would make
        logins right after ``add_user()`` fail.)
        """
        self.passwd_dir.mkdir(exist_ok=True)
        path = self.passwd_dir / name
        tmp = self.passwd_dir / f".{name}.tmp"
        tmp.write_text(f"{name}:{{PLAIN}}{password}::::::\n")
        # As root the auth process runs as the unprivileged "dovecot" user.
        tmp.chmod(0o644 if os.geteuid() == 0 else 0o600)
        os.replace(tmp, path)

    def _write_config(self) -> None:
        uid, gid = self._mail_owner()
        if os.geteuid() == 0:
            # Dovecot's defaults: these users come with the Debian package.
            privileges = (
                "default_internal_user = dovecot\n"
                "default_internal_group = dovecot\n"
                "default_login_user = dovenull\n"
            )
            chroots = ""
        else:
            user = pwd.getpwuid(uid).pw_name
            group = grp.getgrgid(gid).gr_name
            privileges = (
                f"default_internal_user = {user}\n"
                f"default_internal_group = {group}\n"
                f"default_login_user = {user}\n"
            )
            # chroot() needs root.
            chroots = "".join(
                f"service {name} {{\n  chroot =\n}}\n"
                for name in ("anvil", "imap-login", "imap-urlauth-login", "ipc", "old-stats")
            )
        config = f"""\
# Written by testkit/dovecot.py; private test instance, nothing from /etc/dovecot.
instance_name = ates-test-{self.port}
base_dir = {self.base_dir}
state_dir = {self.state_dir}
log_path = {self.log_path}
protocols = imap
listen = {HOST}
shutdown_clients = yes

{privileges}first_valid_uid = {min(uid, 500)}
first_valid_gid = {min(gid, 1)}
{chroots}
ssl = yes
ssl_cert = <{self.tls_dir / "server.crt"}
ssl_key = <{self.tls_dir / "server.key"}
ssl_min_protocol = TLSv1.2

disable_plaintext_auth = no
auth_mechanisms = {self.auth_mechanisms}
auth_username_format = %u
auth_verbose = yes
# No delays for failed logins: tests log in with wrong passwords on purpose.
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {self.passwd_dir}/%u
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={self.mail_dir}/%u
}}

mail_location = maildir:~/Maildir:LAYOUT=fs
mail_fsync = never
namespace inbox {{
  inbox = yes
  separator = /
}}
mail_max_userip_connections = 100
imap_idle_notify_interval = 10 secs
mailbox_idle_check_interval = 1 secs

service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self.ssl_port}
    ssl = yes
  }}
}}
# The auth process finds no penalty socket and so never slows down logins
# from 127.0.0.1 after failed attempts.
service anvil {{
  unix_listener anvil-auth-penalty {{
    path = anvil-auth-penalty-disabled
  }}
}}
{self._extra_config()}"""
        self.config_path.write_text(config)

    def _extra_config(self) -> str:
        """Return configuration a variant adds at the end (called while writing the config)."""
        return ""
