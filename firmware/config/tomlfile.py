"""Reading a TOML file a user gave us (station config, profile, scenario) without ever hanging
or crashing on it.

`read_toml(path)` returns the parsed table or raises `TomlFileError` whose `reason` is one
line (the caller adds the file name and turns it into its own error: ConfigError for a
config or a profile, ScenarioError for a scenario). It refuses what is not a regular file
(a FIFO would block the reader forever, a directory or a device is a mistake), a file over
`MAX_BYTES`, text that is not UTF-8 TOML, and tables or arrays nested deeper than
`MAX_DEPTH` (`tomllib` itself recurses once per level and would raise RecursionError on a
file nested thousands deep; later checks and messages recurse too).
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

MAX_BYTES = 1024 * 1024  # a station config is a few KiB; a scenario names its WAVs
MAX_DEPTH = 32  # the deepest legitimate value is 4 levels (scripts.<name>[i].zh)


class TomlFileError(ValueError):
    """A TOML file cannot be read or parsed; `reason` says why in one line, `missing` if absent."""

    def __init__(self, reason: str, *, missing: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.missing = missing


def read_toml(path: str | Path) -> dict:
    """The parsed TOML table of a regular file; TomlFileError with a one-line reason otherwise."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; a regular file ignores the flag.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise TomlFileError("file not found", missing=True) from None
    except IsADirectoryError:
        raise TomlFileError("is a directory, not a file") from None
    except OSError as exc:
        raise TomlFileError(f"cannot read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise TomlFileError("is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
            raise TomlFileError(f"is {kind}, not a regular file")
        if st.st_size > MAX_BYTES:
            raise TomlFileError(f"is {st.st_size} bytes, over the {MAX_BYTES}-byte limit")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise TomlFileError(f"cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)
    return parse_toml(raw)


def parse_toml(raw: bytes | str) -> dict:
    """Parse TOML text with the same limits as `read_toml`."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise TomlFileError(f"not valid TOML: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TomlFileError(f"not valid TOML: {exc}") from None
    except RecursionError:
        raise TomlFileError(f"not accepted: values nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise TomlFileError(f"not valid TOML: {exc}") from None
    check_depth(data)
    return data


def check_depth(data, max_depth: int = MAX_DEPTH) -> None:
    """TomlFileError if tables/arrays nest deeper than max_depth (checked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            raise TomlFileError(f"not accepted: values nested more than {max_depth} levels deep")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
