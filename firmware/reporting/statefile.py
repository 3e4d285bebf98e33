"""The station's state directory: reading its small files (`overrides.json`, `agent.json`,
`seq.hwm`) without ever blocking (a FIFO, a device or a socket put there by mistake is refused
at once: opened with O_NONBLOCK, checked on the open descriptor, instead of hanging `run` or
`check-config` until someone writes to it), and who owns it (`foreign_owner`: root must not
leave root-owned files in the service user's directory)."""

from __future__ import annotations

import errno
import os
import pwd
import stat
from pathlib import Path

MAX_STATE_FILE_BYTES = 1024 * 1024


def read_state_text(path: str | Path, max_bytes: int = MAX_STATE_FILE_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `max_bytes`. FileNotFoundError (and
    NotADirectoryError) pass through; any other problem is an OSError whose `strerror` says
    why (UnicodeDecodeError, a ValueError, for text that is not UTF-8)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = (
                "a FIFO"
                if stat.S_ISFIFO(st.st_mode)
                else "a directory"
                if stat.S_ISDIR(st.st_mode)
                else "a device or socket"
            )
            raise OSError(errno.EINVAL, f"is {kind}, not a regular file", str(path))
        if st.st_size > max_bytes:
            raise OSError(errno.EFBIG, f"is {st.st_size} bytes, over the {max_bytes}-byte limit", str(path))
        raw = os.read(fd, max_bytes + 1)
    finally:
        os.close(fd)
    return raw.decode("utf-8")


def user_name(uid: int) -> str:
    """The login name of `uid`, or the number when it has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def foreign_owner(state_dir: str | os.PathLike) -> int | None:
    """The uid owning `state_dir` when this process is root and the directory exists and
    belongs to another user (the service's), else None: files root made there would lock
    the service out."""
    if os.geteuid() != 0:
        return None
    try:
        uid = Path(state_dir).stat().st_uid
    except OSError:
        return None
    return uid or None
