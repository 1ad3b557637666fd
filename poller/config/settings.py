"""settings.ini (plus POLLER_<SECTION>_<KEY> environment overrides) → frozen, validated Settings."""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from poller.ates.policy import (
    CRITERIA,
    MASK,
    AtesSettings,
    DuplicateSettings,
    LimitSettings,
    MailboxSettings,
    Policy,
    TicketSettings,
    compile_clear_pattern,
)
from poller.config.oauth2 import OAuth2Settings, read_oauth2
from poller.config.rulesfile import RulesSettings, read_rules_settings
from poller.config.sections import Section
from poller.config.service import (
    MetricsSettings,
    RetrySettings,
    ScheduleSettings,
    StatusSettings,
    read_service_settings,
)
from poller.config.source import SettingsSource
from poller.config.web import WebSettings, read_web_settings
from poller.config.webhook import WebhookSettings, masked_url, read_webhook_settings
from poller.errors import ConfigError
from poller.folders import same_folder
from poller.paths import POSTGRES_SCHEMES, anchored, anchored_sqlite_url, masked_database_url

if TYPE_CHECKING:  # loaded with a rules file only
    from poller.ates.expected import Expectation
    from poller.ates.mailrules import RuleSet

logger = logging.getLogger(__name__)

SECRETS = ("password", "passwords", "credential", "secret")
# The keys a shown value may come from, where they differ from its name.
_KEYS_OF = {("imap", "password"): ("password", "password_file"),
            ("ates", "passwords"): ("password", "password_file"),
            ("webhook", "secret"): ("secret", "secret_file"),
            ("database", "password"): ("password_file",),
            ("web", "password"): ("password_file",),
            ("oauth2", "credential"): ("client_secret_file", "client_certificate_file",
                                       "service_account_file")}


@dataclass(frozen=True)
class ImapSettings:
    host: str
    username: str
    password: str = field(repr=False)
    port: int = 993
    security: str = "ssl"
    folder: str = "INBOX"
    cafile: str | None = None
    verify: bool = True
    timeout: float = 30.0
    search: str = "UNSEEN"
    fetch_chunk: int = 200
    name: str = ""  # how the logs and the store name this mailbox: [imap] name
    auth: str = "password"
    oauth2: OAuth2Settings | None = None  # with auth = xoauth2 | oauthbearer

    @property
    def key(self) -> str:
        """Return what identifies the mailbox itself: user@host:port/folder."""
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///tickets.db"
    attachments_dir: str | None = None
    # PostgreSQL: from [database] password_file; None leaves it to the URL, PGPASSWORD or
    # ~/.pgpass (libpq's own look-ups)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Settings:
    imap: ImapSettings
    mailbox: MailboxSettings
    ates: AtesSettings
    duplicates: DuplicateSettings
    limits: LimitSettings
    database: DatabaseSettings
    tickets: TicketSettings = field(default_factory=TicketSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    status: StatusSettings = field(default_factory=StatusSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    web: WebSettings = field(default_factory=WebSettings)
    rules: RulesSettings = field(default_factory=RulesSettings)
    # the rules [rules] file holds (None: no rules file) and its [[expect]] entries; `check`
    # lists the settings, not these
    rule_set: RuleSet | None = field(default=None, metadata={"shown": False})
    expectations: tuple[Expectation, ...] = field(default=(), metadata={"shown": False})
    source: str = ""
    # (section, key) → where its value came from: "PATH:LINE" or the environment variable
    origins: dict[tuple[str, str], str] = field(default_factory=dict, compare=False, repr=False)

    def policy(self) -> Policy:
        """Return the settings the ATES rules read."""
        return Policy(self.ates, self.duplicates, self.mailbox, self.limits, self.tickets,
                      self.expectations)

    def target_folders(self) -> list[str]:
        """Return the folders mail may be moved to, as the settings name them."""
        m = self.mailbox
        folders = [m.quarantine_folder]
        if m.on_success == "move":
            folders.append(m.processed_folder)
        if m.on_no_token == "move":
            folders.append(m.no_token_folder)
        return folders

    def origin(self, section: str, name: str) -> str:
        """Return where the value redacted() shows as SECTION's NAME came from: "PATH:LINE",
        the environment variable, or "default" (also for a default derived from another
        setting)."""
        for key in _KEYS_OF.get((section, name), (name,)):
            if (section, key) in self.origins:
                return self.origins[(section, key)] + ("" if key == name else f" ({key})")
        return "default"

    def redacted(self) -> dict[str, dict[str, object]]:
        """Return the effective settings as nested dicts, secrets replaced by a mask; [oauth2]
        (kept in ImapSettings) as a section of its own."""
        out: dict[str, dict[str, object]] = {}

        def add(name: str, section: Any) -> None:
            values = out[name] = {}
            for f in fields(section):
                value = getattr(section, f.name)
                if hasattr(value, "__dataclass_fields__"):
                    add(f.name, value)
                elif f.name != "oauth2":  # None: no [oauth2] with auth = password
                    values[f.name] = _shown(name, f.name, value)

        for section in fields(self):
            value = getattr(self, section.name)
            if hasattr(value, "__dataclass_fields__") and section.metadata.get("shown", True):
                add(section.name, value)
        return out


def _shown(section: str, key: str, value: object) -> object:
    """Return a setting's value as `check` prints it: secrets masked."""
    if key in SECRETS:
        return MASK if value else value
    if section == "webhook" and key == "url" and isinstance(value, str):
        return masked_url(value)
    if section == "database" and key == "url" and isinstance(value, str):
        return masked_database_url(value)
    return value


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def load_settings(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Settings:
    """Read and validate settings.ini; raise ConfigError naming the first bad section and key."""
    environ = dict(os.environ if environ is None else environ)
    path = Path(path)
    source = SettingsSource(path, environ)  # unknown sections, keys and variables refused here
    _warn_if_exposed(path, source)

    def section(name: str) -> Section:
        return Section(name, source.section(name), source.origins)

    base = path.resolve().parent
    imap = section("imap")
    security = imap.choice("security", ("ssl", "starttls", "none"), "ssl")
    auth = imap.choice("auth", ("password", "xoauth2", "oauthbearer"), "password")
    host, username = imap.str("host", required=True), imap.str("username", required=True)
    folder = imap.str("folder", "INBOX")
    imap_settings = ImapSettings(
        host=host,
        port=imap.int("port", 993 if security == "ssl" else 143, minimum=1),
        security=security,
        username=username,
        password=imap.secret("password", base=base) if auth == "password" else "",
        folder=folder,
        cafile=_path_setting(imap.str("cafile"), base),
        verify=imap.bool("verify", True),
        timeout=imap.float("timeout", 30.0),
        search=imap.str("search", "UNSEEN"),
        fetch_chunk=imap.int("fetch_chunk", 200, minimum=1),
        name=imap.str("name", f"{username}@{host}/{folder}"),
        auth=auth,
        oauth2=read_oauth2(section("oauth2"), base) if auth != "password" else None,
    )
    if imap_settings.cafile and not Path(imap_settings.cafile).is_file():
        raise ConfigError(f"[imap] cafile: {imap_settings.cafile} does not exist")
    _warn_if_readable_on_the_way(imap_settings)

    mbox = section("mailbox")
    mailbox = MailboxSettings(
        on_success=mbox.choice("on_success", ("flag", "move"), "flag"),
        processed_folder=mbox.str("processed_folder", "Processed"),
        quarantine_folder=mbox.str("quarantine_folder", "Quarantine"),
        on_no_token=mbox.choice("on_no_token", ("leave", "move"), "leave"),
        no_token_folder=mbox.str("no_token_folder", "No token"),
        keyword=mbox.str("keyword", "$AtesProcessed"),
    )
    if not re.fullmatch(r"[!#$%&'*+\-.0-9A-Z^_`a-z|~]+", mailbox.keyword):
        raise ConfigError(f"[mailbox] keyword: {mailbox.keyword!r} is not a valid IMAP keyword")
    for key in ("quarantine_folder", "processed_folder", "no_token_folder"):
        if same_folder(getattr(mailbox, key), imap_settings.folder):
            raise ConfigError(f"[mailbox] {key}: must differ from [imap] folder "
                              f"({imap_settings.folder!r}) in more than case (servers such as "
                              "Microsoft 365 and Gmail fold it), or mail would be moved round "
                              "for ever")

    ates = section("ates")
    passwords = _split(ates.secret("password", base=base))
    ates_settings = AtesSettings(
        passwords=passwords,
        id=ates.str("id"),
        local_organization=ates.str("local_organization", "Local organization"),
    )

    dup = section("duplicates")
    criteria = _split(dup.str("criteria", ",".join(CRITERIA)).lower())
    unknown = [c for c in criteria if c not in CRITERIA]
    if unknown:
        raise ConfigError(
            f"[duplicates] criteria: unknown {', '.join(unknown)} (use any of {', '.join(CRITERIA)})"
        )
    clear_pattern = dup.str("clear_pattern", DuplicateSettings.clear_pattern)
    try:
        compile_clear_pattern(clear_pattern)
    except ValueError as exc:
        raise ConfigError(f"[duplicates] clear_pattern: {exc}") from None
    duplicates = DuplicateSettings(
        criteria=criteria,
        action=dup.choice("action", ("note", "new"), "note"),
        clear_pattern=clear_pattern,
    )

    tick = section("tickets")
    tickets = TicketSettings(**{key: tick.str(key, getattr(TicketSettings, key))
                                for key in ("queue", "priority", "source", "issue_type")})

    lim = section("limits")
    limits = LimitSettings(
        max_message_bytes=lim.int("max_message_bytes", LimitSettings.max_message_bytes, 1024),
        max_attachment_bytes=lim.int("max_attachment_bytes", LimitSettings.max_attachment_bytes),
        max_read_seconds=lim.int("max_read_seconds", LimitSettings.max_read_seconds, 1),
        max_fetch_bytes=lim.int("max_fetch_bytes", LimitSettings.max_fetch_bytes, 1024 * 1024),
    )

    db = section("database")
    url = db.str("url", "sqlite:///tickets.db")
    if not url.startswith(("sqlite:///", *POSTGRES_SCHEMES)):
        raise ConfigError(
            f"[database] url: {masked_database_url(url)!r} is neither an SQLite nor a "
            "PostgreSQL database URL (e.g. sqlite:///relative/path.db, "
            "sqlite:////absolute/path.db or postgresql://USER@HOST:5432/DBNAME)"
        )
    password = db.secret_file("password_file", base=base)
    if password is not None and not url.startswith(POSTGRES_SCHEMES):
        raise ConfigError("[database] password_file: only a PostgreSQL url takes a password")
    database = DatabaseSettings(url=anchored_sqlite_url(url, base),
                                attachments_dir=_path_setting(db.str("attachments_dir"), base),
                                password=password)

    rules, loaded = read_rules_settings(section("rules"), base)
    return Settings(
        imap=imap_settings,
        mailbox=mailbox,
        ates=ates_settings,
        duplicates=duplicates,
        limits=limits,
        database=database,
        webhook=_warn_if_webhook_in_plain_text(read_webhook_settings(section("webhook"), base)),
        web=read_web_settings(section("web"), base),
        tickets=tickets,
        rules=rules,
        rule_set=loaded.rules if loaded else None,
        expectations=loaded.expectations if loaded else (),
        source=str(path),
        origins=dict(source.origins),
        **read_service_settings(section, base, database.url, imap_settings.key),
    )


def _warn_if_exposed(path: Path, source: SettingsSource) -> None:
    """Log a warning when the file holds a password and users other than its owner can read it."""
    holds_password = any(source.parser.get(name, key, fallback="").strip()
                         for name, key in (("imap", "password"), ("ates", "password"),
                                           ("webhook", "secret")))
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if holds_password and mode & (stat.S_IRGRP | stat.S_IROTH):
        logger.warning("%s holds a password and is readable by other users (mode %o); "
                       "chmod 600 it, or move the password to password_file or the environment",
                       path, stat.S_IMODE(mode))


def _path_setting(value: str | None, base: Path) -> str | None:
    """Return a path setting anchored at the settings file's folder when it is relative."""
    return str(anchored(value, base)) if value else None


def _warn_if_readable_on_the_way(imap: ImapSettings) -> None:
    """Log a warning (at every start) when the password and mail cross the network unprotected:
    plain text, or TLS without a checked certificate, to a host that is not this machine."""
    if _loopback(imap.host):
        return
    if imap.security == "none":
        logger.warning("[imap] security = none: the password and every mail cross the network to "
                       "%s in plain text; use ssl or starttls", imap.host)
    elif not imap.verify:
        logger.warning("[imap] verify = false: the certificate of %s is not checked, so anyone in "
                       "between can read the password and every mail; set cafile instead",
                       imap.host)


def _warn_if_webhook_in_plain_text(hook: WebhookSettings) -> WebhookSettings:
    """Log a warning (at every start) when signed events, and a password in the URL, cross the
    network in plain text to a host that is not this machine; return hook."""
    host = urlsplit(hook.url).hostname if hook.url else None
    if host and urlsplit(hook.url or "").scheme == "http" and not _loopback(host):
        logger.warning("[webhook] url: %s is http://: every ticket event (and the URL's "
                       "password) crosses the network to %s in plain text; use https://",
                       hook.shown_url(), host)
    return hook


def _loopback(host: str) -> bool:
    """Return whether host names this machine (an address is not looked up: a name other than
    localhost counts as remote)."""
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    import ipaddress  # only for a webhook on plain http

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

