"""A private Cyrus IMAP 3.6 server for integration tests (no pytest needed).

``Cyrus`` runs Cyrus's ``master -D`` as a child process with an imapd.conf and a cyrus.conf
written from scratch; every service it starts is given ``-C <workdir>/imapd.conf`` (master
does not pass its own on, and imapd would read /etc/imapd.conf). Nothing under /etc is read
and the system service is never touched. It listens on 127.0.0.1 only, on two ports picked at
run time (plain IMAP and implicit TLS, with a certificate from a throw-away CA), and keeps
Debian's stock namespace: personal folders under ``INBOX.``, '.' between levels. ``idled``
runs beside imapd, so IDLE reports new mail at once (without it Cyrus looks every 60 s).

Users are in a private sasldb (``saslpasswd2``); the admin ``cyrus`` creates each user's
mailbox (``CREATE user.NAME``) over IMAP. As root, the services run as ``nobody``.

The binaries come from Debian's cyrus-imapd when it is installed, else from the copy
scripts/prepare unpacks into .cache/cyrus-imapd (cyrus-imapd conflicts with dovecot-imapd as
a package, so both cannot be installed).
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import subprocess
from pathlib import Path

from testkit.imapserver import (
    HOST,
    PROBE_USER,
    ImapAccount,
    ImapServer,
    make_certificates,
    searchable_by_others,
)

__all__ = ["Cyrus", "ImapAccount"]

REPO = Path(__file__).resolve().parent.parent
UNPACKED = REPO / ".cache" / "cyrus-imapd"
SYSTEM = Path("/")
ADMIN = "cyrus"
# As root, the services run as this user and group (cyrus_user, cyrus_group).
ROOT_USER, ROOT_GROUPS = "nobody", ("nogroup", "nobody")


def find_cyrus() -> Path:
    """Return the directory Cyrus's files are under ('/' when installed), or raise
    RuntimeError."""
    for root in (SYSTEM, UNPACKED):
        if (root / "usr/lib/cyrus/bin/master").is_file() and \
                (root / "usr/sbin/saslpasswd2").is_file():
            return root
    raise RuntimeError("Cyrus IMAP not found; run scripts/prepare (it unpacks Debian's "
                       f"cyrus-imapd and sasl2-bin into {UNPACKED})")


class Cyrus(ImapServer):
    """A private Cyrus IMAP instance listening on 127.0.0.1 (see ImapServer)."""

    name = "cyrus master"
    prefix = "cyrus-"

    def __init__(self, workdir: Path | None = None) -> None:
        self.root = find_cyrus()
        super().__init__(workdir)
        self.imapd_conf = self.workdir / "imapd.conf"
        self.cyrus_conf = self.workdir / "cyrus.conf"
        self.sasldb = self.workdir / "sasldb2"
        self._admin_password = secrets.token_hex(8)
        self._probe_mailbox = False

    def server_name(self, folder: str) -> str:
        """Debian's stock namespace: INBOX.X, with '.' between levels."""
        name = folder.replace("/", ".")
        return name if name == "INBOX" or name.startswith("INBOX.") else f"INBOX.{name}"

    def _binary(self, name: str) -> str:
        return str(self.root / "usr/lib/cyrus/bin" / name)

    def _environment(self) -> dict[str, str]:
        libraries = [str(p.parent) for p in (self.root / "usr/lib").glob("*/libcyrus.so.0")]
        env = dict(os.environ)
        if self.root != SYSTEM and libraries:
            env["LD_LIBRARY_PATH"] = ":".join([*libraries, env.get("LD_LIBRARY_PATH", "")])
        return env

    def _command(self) -> list[str]:
        return [self._binary("master"), "-D", "-C", str(self.imapd_conf), "-M",
                str(self.cyrus_conf), "-p", str(self.workdir / "master.pid")]

    def _run_as(self) -> tuple[str, str, int, int]:
        """Return the user and group the services run as, with their ids."""
        if os.geteuid() != 0:
            return (pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name,
                    os.geteuid(), os.getegid())
        user = pwd.getpwnam(ROOT_USER)
        for group in ROOT_GROUPS:
            try:
                return ROOT_USER, group, user.pw_uid, grp.getgrnam(group).gr_gid
            except KeyError:
                continue
        raise RuntimeError(f"running as root needs one of the groups {ROOT_GROUPS}")

    def _prepare(self) -> None:
        user, group, uid, gid = self._run_as()
        # config/socket: where each imapd in IDLE binds the socket idled reaches it on
        directories = [self.workdir / name for name in ("config", "config/socket", "spool",
                                                         "lock", "proc", "socket", "sieve")]
        for path in (*directories, self.tls_dir):
            path.mkdir(parents=True, exist_ok=True)
        if not self.cafile.exists():
            make_certificates(self.tls_dir)
        self._write_config()
        self._sasl_password(ADMIN, self._admin_password)
        self._sasl_password(PROBE_USER, self._probe_password)
        if os.geteuid() == 0:
            if self._owns_workdir:
                self.workdir.chmod(0o755)
            searchable_by_others(self.workdir, "Cyrus")
            for path in (*directories, self.sasldb, self.tls_dir / "server.key"):
                os.chown(path, uid, gid)

    def _probe(self) -> None:
        # The probe user's mailbox can only be made once the server runs, by the admin.
        if not self._probe_mailbox:
            self._create_mailbox(PROBE_USER)
            self._probe_mailbox = True
        super()._probe()

    def _create_user(self, name: str, password: str) -> None:
        self._sasl_password(name, password)
        self._create_mailbox(name)

    def _create_mailbox(self, user: str) -> None:
        admin = self.client(ADMIN, self._admin_password)
        try:
            if not admin.folder_exists(f"user.{user}"):
                admin.create_folder(f"user.{user}")
        finally:
            admin.logout()

    def _sasl_password(self, name: str, password: str) -> None:
        result = subprocess.run(
            [str(self.root / "usr/sbin/saslpasswd2"), "-p", "-c", "-f", str(self.sasldb), name],
            input=password.encode(), capture_output=True, env=self._environment(), check=False)
        if result.returncode != 0:
            raise RuntimeError(f"saslpasswd2 failed: {result.stderr.decode(errors='replace')}")

    def _write_config(self) -> None:
        user, group, _, _ = self._run_as()
        w = self.workdir
        self.imapd_conf.write_text(f"""\
# Written by testkit/cyrus.py; private test instance, nothing from /etc.
configdirectory: {w}/config
defaultpartition: default
partition-default: {w}/spool
proc_path: {w}/proc
mboxname_lockpath: {w}/lock
sievedir: {w}/sieve
lmtpsocket: {w}/socket/lmtp
idlesocket: {w}/socket/idle
notifysocket: {w}/socket/notify
syslog_prefix: ates-test-cyrus-{self.port}
cyrus_user: {user}
cyrus_group: {group}
admins: {ADMIN}
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {self.sasldb}
sasl_mech_list: PLAIN LOGIN
# no pause after a failed login: tests log in with wrong passwords on purpose
failedloginpause: 0
# Debian's stock namespace
altnamespace: no
unixhierarchysep: no
tls_server_cert: {self.tls_dir / "server.crt"}
tls_server_key: {self.tls_dir / "server.key"}
""")
        imapd = f'{self._binary("imapd")} -C {self.imapd_conf}'
        self.cyrus_conf.write_text(f"""\
# Written by testkit/cyrus.py; every command names the private imapd.conf.
START {{
  recover cmd="{self._binary("ctl_cyrusdb")} -C {self.imapd_conf} -r"
}}
SERVICES {{
  imap cmd="{imapd}" listen="{HOST}:{self.port}" prefork=0
  imaps cmd="{imapd} -s" listen="{HOST}:{self.ssl_port}" prefork=0
}}
EVENTS {{
}}
DAEMON {{
  idled cmd="{self._binary("idled")} -C {self.imapd_conf}"
}}
""")
