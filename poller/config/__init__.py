"""The settings: settings.ini plus POLLER_<SECTION>_<KEY> environment overrides → one frozen,
validated Settings value, read once at start (and on SIGHUP).

May import: poller.ates (whose settings it reads), poller.errors and the standard library
(import-linter checks it; see pyproject.toml).
"""

from poller.config.settings import DatabaseSettings, ImapSettings, Settings, load_settings

__all__ = ["DatabaseSettings", "ImapSettings", "Settings", "load_settings"]
