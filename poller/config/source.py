"""Where the settings come from: settings.ini (each key with its line) and the POLLER_<SECTION>_<KEY>
environment variables, checked against the known sections and keys before anything else."""

from __future__ import annotations

import configparser
from pathlib import Path

from poller.config.keys import (
    ENV_OTHER,
    ENV_PREFIX,
    KEYS,
    env_name,
    unknown_key,
    unknown_section,
    unknown_variable,
)
from poller.errors import ConfigError

# Bigger than any settings file: a larger one is a mistake (a log or a database named).
MAX_SETTINGS_BYTES = 1024 * 1024


class SettingsSource:
    """The values of every section (file, then environment, which wins) and where each came
    from: "PATH:LINE" or the environment variable's name."""

    def __init__(self, path: Path, environ: dict[str, str]):
        self.path = path
        text = _read(path)
        # No DEFAULT section: its keys would be copied into every section. An empty name
        # cannot be written as a header, so a [DEFAULT] in the file is a section like others
        # (and refused as unknown).
        self.parser = configparser.ConfigParser(interpolation=None, default_section="")
        try:
            self.parser.read_string(text, source=str(path))
        except configparser.Error as exc:
            raise ConfigError(f"{path}: cannot read settings: {exc}") from None
        lines = _key_lines(text, self.parser)
        self.values: dict[str, dict[str, str]] = {}
        self.origins: dict[tuple[str, str], str] = {}
        for name in self.parser.sections():
            if name not in KEYS:
                raise ConfigError(f"{path}:{lines.get((name, ''), '?')}: {unknown_section(name)}")
            for key, value in self.parser.items(name):
                if key not in KEYS[name]:
                    raise ConfigError(f"{path}:{lines.get((name, key), '?')}: "
                                      f"{unknown_key(name, key)}")
                self.values.setdefault(name, {})[key] = value
                self.origins[(name, key)] = f"{path}:{lines.get((name, key), '?')}"
        known = {env_name(s, k): (s, k) for s, keys in KEYS.items() for k in keys}
        for variable in sorted(environ):
            if not variable.startswith(ENV_PREFIX) or variable in ENV_OTHER:
                continue
            if variable not in known:
                raise ConfigError(unknown_variable(variable))
            section, key = known[variable]
            self.values.setdefault(section, {})[key] = environ[variable]
            self.origins[(section, key)] = variable

    def section(self, name: str) -> dict[str, str]:
        """Return the values of section NAME (empty when neither file nor environment has it)."""
        return dict(self.values.get(name, {}))


def _read(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SETTINGS_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: settings file not found (use --config PATH)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read settings: {exc.strerror}") from None
    if len(data) > MAX_SETTINGS_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_SETTINGS_BYTES} bytes: not a settings file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot read settings: not UTF-8 text (byte "
                          f"{exc.start + 1})") from None


def _key_lines(text: str, parser: configparser.ConfigParser) -> dict[tuple[str, str], int]:
    """Return the line of each section header (key '') and of each key, as the parser that
    read TEXT found them (continuation lines, indented, belong to the key before)."""
    lines: dict[tuple[str, str], int] = {}
    section: str | None = None
    in_value = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;" or (in_value and line[0].isspace()):
            continue
        header = parser.SECTCRE.match(stripped)
        if header:
            section, in_value = header.group("header"), False
            lines.setdefault((section, ""), number)
            continue
        option = parser.OPTCRE.match(stripped)
        if option and section is not None:
            lines.setdefault((section, parser.optionxform(option.group("option").rstrip())),
                             number)
            in_value = True
    return lines
