"""Typed access to one INI section: environment overrides, precise errors, secret files."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from poller.config.keys import EMPTY_MEANS_NONE, KEYS
from poller.errors import ConfigError
from poller.paths import anchored

logger = logging.getLogger(__name__)

MAX_SECRET_CHARS = 64 * 1024


class Section:
    """Typed access to one INI section, with environment overrides and precise errors."""

    def __init__(self, name: str, values: dict[str, str],
                 origins: dict[tuple[str, str], str] | None = None):
        """VALUES: the section's keys from the file and the environment (which wins); ORIGINS:
        where each came from (the file's name and line, or the variable), for messages."""
        self.name = name
        self._values = values
        self._origins = origins or {}

    def _fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"[{self.name}] {key}: {problem}")

    def str(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        """Return KEY's value (stripped), DEFAULT when it is not set. An empty value is None
        ("none"; "" for a key that has a default) where keys.EMPTY_MEANS_NONE allows it, and
        refused elsewhere."""
        if key not in KEYS.get(self.name, ()):  # a setting read must be listed to be allowed
            raise LookupError(f"[{self.name}] {key} is not in poller.config.keys.KEYS")
        raw = self._values.get(key)
        value = None if raw is None else raw.strip()
        if value:
            return value
        if required:
            raise self._fail(key, "is required" + ("" if raw is None else
                                                   f" (it is empty in {self._origin(key)})"))
        if raw is None:
            return default
        if (self.name, key) in EMPTY_MEANS_NONE:
            return None if default is None else ""
        raise self._fail(key, f"is empty in {self._origin(key)}: give a value, or remove the "
                              "line (or variable) for the default")

    def _origin(self, key: str) -> str:
        return self._origins.get((self.name, key), "the settings")

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = (self.str(key) or default).lower()
        if value not in choices:
            raise self._fail(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def int(self, key: str, default: int, minimum: int = 0) -> int:
        raw = self.str(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self._fail(key, f"expected a whole number, got {raw!r}") from None
        if value < minimum:
            raise self._fail(key, f"must be at least {minimum}, got {value}")
        return value

    def float(self, key: str, default: float, *, allow_zero: bool = False) -> float:
        raw = self.str(key)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise self._fail(key, f"expected a number, got {raw!r}") from None
        if value < 0 or (value == 0 and not allow_zero):
            raise self._fail(key, f"must be {'zero or more' if allow_zero else 'positive'}, "
                                  f"got {raw}")
        return value

    def bool(self, key: str, default: bool) -> bool:
        raw = self.str(key)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise self._fail(key, f"expected true or false, got {raw!r}")

    def secret(self, key: str, *, base: Path) -> str:
        """Return KEY, or the first line of the file named by KEY_file; one of them is required."""
        value = self.str(key)
        if value:
            return value
        text = self.secret_file(f"{key}_file", base=base)
        if text is None:
            raise self._fail(key, f"is required (or set {key}_file)")
        return text

    def path(self, key: str, *, base: Path) -> Path | None:
        """Return the file named by KEY (environment variables expanded, relative to BASE)."""
        value = self.str(key)
        if not value:
            return None
        return anchored(value, base)

    def secret_file(self, key: str, *, base: Path, whole: bool = False) -> str | None:
        """Return the first line (WHOLE: all of it) of the file named by KEY, None when KEY is
        unset. Warns when users other than the owner can read the file."""
        path = self.path(key, base=base)
        if path is None:
            return None
        try:
            with path.open(encoding="utf-8") as handle:
                # the first line only (WHOLE: a JSON key file), bounded either way
                text = (handle.read(MAX_SECRET_CHARS) if whole
                        else handle.readline(MAX_SECRET_CHARS)).strip()
            mode = path.stat().st_mode
        except OSError as exc:
            raise self._fail(key, f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise self._fail(key, f"{path} is not UTF-8 text") from None
        if not text:
            raise self._fail(key, f"the {'content' if whole else 'first line'} of {path} is "
                                  "empty")
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            logger.warning("%s holds a secret and is readable by other users (mode %o); "
                           "chmod 600 it", path, stat.S_IMODE(mode))
        return text
