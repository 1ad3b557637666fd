"""The settings of running unattended: [schedule], [retry], [metrics] and [status].

Read by poller.config.settings.load_settings, which hands over its typed section readers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from poller.config.sections import Section
from poller.errors import ConfigError
from poller.paths import anchored, sqlite_file

# Servers may end an IDLE after 30 minutes of silence (RFC 2177): renew it well before.
IDLE_RENEW_MAX = 29 * 60
# What of a mailbox's user@host:port/folder may stay in its lock file's name.
_LOCK_NAME_RE = re.compile(r"[^A-Za-z0-9@.+-]+")


@dataclass(frozen=True)
class ScheduleSettings:
    interval: int = 300
    idle: bool = False
    idle_renew: int = 600
    lock_file: str = ""
    lock_wait: float = 10.0
    stop_grace: float = 5.0


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = 5
    initial_wait: float = 1.0
    max_wait: float = 60.0


@dataclass(frozen=True)
class MetricsSettings:
    textfile: str | None = None


@dataclass(frozen=True)
class StatusSettings:
    max_age: int = 900


def read_service_settings(section: Callable[[str], Section], base: Path, database_url: str,
                          mailbox_key: str) -> dict[str, object]:
    """Return the four sections by name, checked; relative paths are relative to the settings file."""
    sched = section("schedule")
    interval = sched.int("interval", ScheduleSettings.interval, minimum=1)
    idle_renew = sched.int("idle_renew", ScheduleSettings.idle_renew, minimum=1)
    if idle_renew > IDLE_RENEW_MAX:
        raise ConfigError(f"[schedule] idle_renew: at most {IDLE_RENEW_MAX} seconds (29 minutes), "
                          f"got {idle_renew}; servers may drop an IDLE after 30 minutes")
    lock_file = sched.str("lock_file")
    schedule = ScheduleSettings(
        interval=interval,
        idle=sched.bool("idle", ScheduleSettings.idle),
        idle_renew=idle_renew,
        lock_file=str(anchored(lock_file, base)) if lock_file else default_lock_file(database_url,
                                                                                   mailbox_key),
        lock_wait=sched.float("lock_wait", ScheduleSettings.lock_wait, allow_zero=True),
        stop_grace=sched.float("stop_grace", ScheduleSettings.stop_grace),
    )

    ret = section("retry")
    retry = RetrySettings(
        attempts=ret.int("attempts", RetrySettings.attempts, minimum=1),
        initial_wait=ret.float("initial_wait", RetrySettings.initial_wait),
        max_wait=ret.float("max_wait", RetrySettings.max_wait),
    )
    if retry.max_wait < retry.initial_wait:
        raise ConfigError("[retry] max_wait: must be at least [retry] initial_wait")

    textfile = section("metrics").str("textfile")
    if textfile and not textfile.endswith(".prom"):
        raise ConfigError(f"[metrics] textfile: {textfile!r} must end in .prom "
                          "(node_exporter's textfile collector reads only those)")
    metrics = MetricsSettings(textfile=str(anchored(textfile, base)) if textfile else None)

    status = StatusSettings(max_age=section("status").int("max_age", 3 * interval, minimum=1))
    return {"schedule": schedule, "retry": retry, "metrics": metrics, "status": status}


def default_lock_file(database_url: str, mailbox_key: str) -> str:
    """Return the mailbox's lock file next to an SQLite database (several mailboxes may share
    one database, each with its own lock), else one per mailbox in the temp dir. The name ends
    in a hash of the whole mailbox key: two keys that read alike once cut and cleaned (a space
    and a slash, a long common beginning) never share a lock."""
    digest = hashlib.sha256(mailbox_key.encode("utf-8")).hexdigest()[:16]
    path = sqlite_file(database_url)
    if path is not None:
        return f"{path}.{_LOCK_NAME_RE.sub('_', mailbox_key)[:80]}-{digest}.lock"
    return str(_temp_dir() / f"ates-poller-{digest}.lock")


def outbox_lock_file(database_url: str) -> str:
    """Return the lock file that keeps webhook delivery runs apart: one per database, whichever
    mailbox (and settings file) a run comes from."""
    path = sqlite_file(database_url)
    if path is not None:
        return f"{path}.outbox.lock"
    digest = hashlib.sha256(database_url.encode("utf-8")).hexdigest()[:16]
    return str(_temp_dir() / f"ates-poller-outbox-{digest}.lock")


def _temp_dir() -> Path:
    """Return the directory for lock files of a database that is no SQLite file."""
    import tempfile  # not for the usual lock beside an SQLite file

    return Path(tempfile.gettempdir())
