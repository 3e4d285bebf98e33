"""Minimal, comment-preserving edits of a TOML config: set `[section] key = value`.

`calibrate` writes a few keys into a technician's hand-written station config; rewriting
the whole file through a TOML library would drop their comments and layout. Only simple
`key = value` lines in plain `[section]` tables are edited; anything else is left alone,
and the result is parsed again before it is written.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from pathlib import Path

_HEADER = re.compile(r"^\s*\[([A-Za-z0-9_.-]+)\]\s*(#.*)?$")
_KEY = r"^(\s*){key}\s*=\s*(.*?)(\s*#.*)?$"


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 2))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} values")


def set_keys(text: str, updates: dict) -> str:
    """Return `text` with `{(section, key): value}` set; a missing key or section is appended."""
    lines = text.splitlines()
    for (section, key), value in updates.items():
        lines = _set_one(lines, section, key, toml_value(value))
    out = "\n".join(lines) + "\n"
    tomllib.loads(out)  # never write a file we cannot read back
    return out


def _set_one(lines: list, section: str, key: str, value: str) -> list:
    start = end = None
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if m:
            if start is not None and end is None:
                end = i
            if m.group(1) == section:
                start, end = i, None
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        return lines + ["", f"[{section}]", f"{key} = {value}"]
    end = len(lines) if end is None else end
    key_re = re.compile(_KEY.format(key=re.escape(key)))
    last = start
    for i in range(start + 1, end):
        m = key_re.match(lines[i])
        if m:
            lines[i] = f"{m.group(1)}{key} = {value}{m.group(3) or ''}"
            return lines
        if lines[i].strip() and not lines[i].lstrip().startswith("#"):
            last = i
    return lines[: last + 1] + [f"{key} = {value}"] + lines[last + 1:]


def write_atomic(path: str | Path, text: str) -> None:
    """Replace the file in one rename, keeping its mode and a `.bak` of the old content."""
    path = Path(path)
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o640
    if path.exists():
        path.with_name(path.name + ".bak").write_bytes(path.read_bytes())
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
