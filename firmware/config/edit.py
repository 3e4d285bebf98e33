"""Comment-preserving edits of a station config, and rewriting a file without changing who may read it.

`calibrate` writes a few keys into a technician's hand-written station config. The edit
goes through `tomlkit`, which keeps comments, layout and key order and understands all of
TOML: a key may live in a `[section]` table, as a dotted key (`audio.tx_gain_db = 0.0` at
the top level), in an inline table (`audio = {tx_gain_db = 0.0}`) or under a super-table
(`[audio.x]` only). The result is parsed again before it is returned.

`write_atomic` replaces a file in one rename and keeps the original's owner, group and
mode: `sudo headset-station calibrate` must not leave a root-owned config behind that the
service user can no longer read. The previous content is kept in `<name>.bak` with the
same owner and group and never a wider mode than the original (it may hold secrets).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError

from firmware.config.tomlfile import TomlFileError, parse_toml
from firmware.errors import ConfigError

NEW_FILE_MODE = 0o640  # a config written from nothing: owner read/write, group (the service) read


def set_keys(text: str, updates: dict, source: str = "config") -> str:
    """Return `text` with `{(section, key): value}` set; a missing key or table is added.

    ConfigError (naming `source`) if the text is not TOML or a section is not a table.
    """
    try:
        parse_toml(text)  # the same limits as every config read (nesting depth, valid TOML)
        doc = tomlkit.parse(text)
        for (section, key), value in updates.items():
            _set_one(doc, section, key, value)
        out = tomlkit.dumps(doc)
    except TomlFileError as exc:
        raise ConfigError(exc.reason, source) from None
    except (TOMLKitError, ValueError) as exc:
        raise ConfigError(f"cannot edit: {exc}", source) from None
    if not out.endswith("\n"):
        out += "\n"
    try:
        parse_toml(out)  # never write a file we cannot read back
    except TomlFileError as exc:
        raise ConfigError(f"editing would make the file unreadable ({exc.reason})", source) from None
    return out


def _set_one(doc, section: str, key: str, value) -> None:
    if section not in doc:
        table = tomlkit.table()
        table[key] = value
        doc[section] = table
        return
    table = doc[section]
    if not isinstance(table, dict):
        raise ConfigError(f"{section}: is a {type(table).__name__}, not a table; cannot set {section}.{key}")
    table[key] = value


def write_atomic(path: str | Path, text: str) -> Path:
    """Replace the file in one rename, keeping its owner, group and mode and a `.bak` of the old
    content (same owner and group, mode never wider than the original's). Returns the path written.

    A symbolic link is followed: its target is rewritten and the link stays. If the original's
    owner cannot be kept (an ordinary user editing someone else's file), the file is rewritten
    in place instead, which keeps owner and mode but is not atomic.
    """
    path = Path(os.path.realpath(path))
    data = text.encode("utf-8")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        _write_new(path, data, NEW_FILE_MODE, None)
        return path
    mode = stat.S_IMODE(st.st_mode)
    owner = (st.st_uid, st.st_gid)
    backup = path.with_name(path.name + ".bak")
    old = path.read_bytes()
    try:
        _write_new(backup, old, mode, owner)
    except PermissionError as exc:
        if exc.errno != errno.EPERM:
            raise
        _write_new(backup, old, mode & 0o600, None)  # cannot give it away: readable by us only
    try:
        _write_new(path, data, mode, owner)
    except PermissionError as exc:
        if exc.errno != errno.EPERM:  # EACCES: no right to write the directory: nothing works
            raise
        with open(path, "r+b") as fh:  # EPERM: cannot give the file away; keep the inode instead
            fh.write(data)
            fh.truncate()
            fh.flush()
            os.fsync(fh.fileno())
    return path


def _write_new(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    """Write `data` to a temp file with `mode` and `owner` set before any byte lands, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600, ours
    try:
        try:
            if owner is not None and owner != (os.geteuid(), os.getegid()):
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb", closefd=False) as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
