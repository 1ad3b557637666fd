"""Every section and key settings.ini may hold, and where an empty value means "none".

A section or key not listed here is refused when the settings are read (with the closest known
name), and so is an environment variable POLLER_<SECTION>_<KEY> that names none of them. A key
written empty (`key =`) means "none" only for the keys in EMPTY_MEANS_NONE (README's
Configuration table says "empty: none" for each); for any other key it is refused, as it most
likely is a value that went missing.
"""

from __future__ import annotations

KEYS: dict[str, tuple[str, ...]] = {
    "imap": ("host", "port", "security", "username", "auth", "password", "password_file",
             "folder", "name", "cafile", "verify", "timeout", "search", "fetch_chunk"),
    "oauth2": ("provider", "client_id", "client_secret", "client_secret_file",
               "client_certificate_file", "tenant", "authority", "service_account_file",
               "token_url", "scope", "cafile"),
    "mailbox": ("on_success", "keyword", "processed_folder", "quarantine_folder", "on_no_token",
                "no_token_folder"),
    "ates": ("password", "password_file", "id", "local_organization"),
    "tickets": ("queue", "priority", "source", "issue_type"),
    "duplicates": ("criteria", "action", "clear_pattern"),
    "rules": ("file", "authserv_id", "timezone"),
    "limits": ("max_message_bytes", "max_attachment_bytes", "max_read_seconds",
               "max_fetch_bytes"),
    "database": ("url", "password_file", "attachments_dir"),
    "schedule": ("interval", "idle", "idle_renew", "lock_file", "lock_wait", "stop_grace"),
    "retry": ("attempts", "initial_wait", "max_wait"),
    "metrics": ("textfile",),
    "status": ("max_age",),
    "webhook": ("url", "secret", "secret_file", "events", "timeout", "initial_wait", "max_wait",
                "budget", "max_attempts", "keep_days", "cafile"),
    "web": ("user", "password_file", "storm_alerts", "certfile", "keyfile"),
}

EMPTY_MEANS_NONE = frozenset({
    ("imap", "cafile"),  # the system's trust store
    ("oauth2", "cafile"),
    ("ates", "id"),  # the token's ID is not checked
    ("tickets", "queue"), ("tickets", "priority"), ("tickets", "source"),
    ("tickets", "issue_type"),
    ("database", "attachments_dir"),  # attachments kept in the database
    ("metrics", "textfile"),  # no textfile
    ("webhook", "url"),  # no webhooks
    ("webhook", "cafile"),  # the system's trust store
    ("rules", "file"),  # no rules
    ("rules", "authserv_id"), ("rules", "timezone"),  # none; the system's
    ("web", "password_file"),  # loopback only
    ("web", "certfile"), ("web", "keyfile"),  # no TLS
})

ENV_PREFIX = "POLLER_"
# POLLER_ variables that are not settings: the settings file itself (poller --config).
ENV_OTHER = ("POLLER_CONFIG",)


def env_name(section: str, key: str) -> str:
    """Return the environment variable that overrides KEY of SECTION."""
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def unknown_section(name: str) -> str:
    """Return why section NAME is refused, with the closest known name."""
    return f"[{name}]: unknown section ({_closest(name, list(KEYS), '[{}]')})"


def unknown_key(section: str, key: str) -> str:
    """Return why KEY of a known SECTION is refused, with the closest known key (or the section
    the key belongs to)."""
    elsewhere = [name for name, keys in KEYS.items() if key in keys]
    if elsewhere:
        hint = f"`{key}` belongs in [{elsewhere[0]}]"
    elif _close(key, list(KEYS[section]), 0.6):
        hint = _closest(key, list(KEYS[section]), "{}")
    else:  # a typo of a key of another section?
        other = {k: name for name, keys in KEYS.items() for k in keys if name != section}
        found = _close(key, list(other), 0.75)
        hint = (f"did you mean `{found[0]}` in [{other[found[0]]}]?" if found
                else _closest(key, list(KEYS[section]), "{}"))
    return f"[{section}] {key}: unknown key ({hint})"


def unknown_variable(name: str) -> str:
    """Return why environment variable NAME (POLLER_…) is refused, with the closest known one."""
    known = [*ENV_OTHER, *(env_name(s, k) for s, keys in KEYS.items() for k in keys)]
    hint = _closest(name, known, "{}", listed=False) or \
        "settings are POLLER_<SECTION>_<KEY>, with a section and key of settings.ini"
    return f"environment variable {name}: not a setting ({hint})"


def _closest(word: str, known: list[str], shape: str, *, listed: bool = True) -> str:
    """Return "did you mean `…`?" for the closest of KNOWN, else (LISTED) the known names."""
    found = _close(word, known, 0.6) or _close(word.lower(), [k.lower() for k in known], 0.6)
    if found:
        best = next((k for k in known if k.lower() == found[0].lower()), found[0])
        return f"did you mean `{shape.format(best)}`?"
    return "known: " + ", ".join(shape.format(k) for k in known) if listed else ""


def _close(word: str, known: list[str], cutoff: float) -> list[str]:
    """Return the one of KNOWN closest to WORD, in a list, if any is close enough."""
    import difflib  # only to word an error: settings that load never need it

    return difflib.get_close_matches(word, known, n=1, cutoff=cutoff)
