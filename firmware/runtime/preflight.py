"""What the service needs from the file system at start, checked before it starts.

`check-config` and `run` call `preflight(settings)`, so "OK" from check-config means the
service will start: the profile loads with its overrides, and every file the service must
read or write is there and usable:

- `mqtt.password_file` (read, and readable by its owner only: the service refuses a
  password file that group or others may read), `mqtt.ca_file`, `mqtt.cert_file`,
  `mqtt.key_file` (read, when a broker is mqtts://), a certificate needs its key;
- the station config file itself, a profile given as a path, the WAV files of the `wav`
  audio backend;
- the state directory (outbox, persisted seq, overrides.json), when a broker is
  configured: writable, and its files writable;
- a persisted `overrides.json` or `agent.json` that the service would not apply is a warning.

Who must be able to read them: the user running the command, except when it runs as root
(`sudo headset-station check-config`), where root may read anything but the service may
not. Then the files are checked for the *service user*: the owner of the state directory
if it exists and is not root (systemd's `StateDirectory=` gives it to the unit's `User=`),
else the `headset` user (the unit's `User=`, created by tools/install-pi) if it exists.
Its groups are its own plus the unit's `SupplementaryGroups=` (gpio, audio). Permission
bits are compared (owner, group, other; POSIX ACLs are not read).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from firmware.config.profiles import load_profile
from firmware.config.settings import Settings
from firmware.errors import ConfigError, StorageError
from firmware.protocol.brokers import parse_broker
from firmware.reporting.commands import OVERRIDES_FILE, load_agent, read_overrides

SERVICE_USER = "headset"  # systemd/headset-station.service User=
SERVICE_SUPPLEMENTARY_GROUPS = ("gpio", "audio")  # ... SupplementaryGroups=
STATE_FILES = ("outbox.db", "outbox.db-wal", "outbox.db-shm", OVERRIDES_FILE)
R, W, X = 4, 2, 1


@dataclass(frozen=True)
class Account:
    """The user whose access is checked, and why it is that user (said in every message)."""

    name: str
    uid: int
    gids: frozenset
    why: str

    def may(self, st: os.stat_result, bits: int) -> bool:
        if self.uid == 0:
            return True
        shift = 6 if st.st_uid == self.uid else 3 if st.st_gid in self.gids else 0
        return (stat.S_IMODE(st.st_mode) >> shift) & bits == bits


def _account(pw: pwd.struct_passwd, why: str) -> Account:
    gids = set(os.getgrouplist(pw.pw_name, pw.pw_gid))
    for name in SERVICE_SUPPLEMENTARY_GROUPS:
        try:
            gids.add(grp.getgrnam(name).gr_gid)
        except KeyError:
            pass
    return Account(pw.pw_name, pw.pw_uid, frozenset(gids), why)


def service_account(settings: Settings) -> Account | None:
    """When run as root: the user the service runs as (see the module docstring); else None."""
    if os.geteuid() != 0:
        return None
    state_dir = Path(settings.station.state_dir)
    try:
        st = state_dir.stat()
    except OSError:
        st = None
    if st is not None and st.st_uid != 0:
        try:
            return _account(pwd.getpwuid(st.st_uid), f"the owner of the state directory {state_dir}")
        except KeyError:
            pass
    try:
        return _account(pwd.getpwnam(SERVICE_USER), "the service user of systemd/headset-station.service")
    except KeyError:
        return None


class _Checker:
    def __init__(self, account: Account | None):
        self.account = account
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self._blocked: set[Path] = set()  # directories already reported as not searchable

    def _who(self) -> str:
        a = self.account
        assert a is not None  # only called when checking for another account
        return f"the service user {a.name} (uid {a.uid}; {a.why})"

    def _denied(self, key: str, path: Path, st: os.stat_result, what: str) -> None:
        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = str(st.st_uid)
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = str(st.st_gid)
        self.problems.append(
            f"{key}: {path} cannot be {what} by {self._who()}: it is {owner}:{group} mode "
            f"{stat.S_IMODE(st.st_mode):04o}; chown or chmod it so that user may"
        )

    def _reach(self, key: str, path: Path) -> bool:
        """Every directory above `path` can be searched (x) by the account."""
        if self.account is None:
            return True
        for parent in reversed(path.absolute().parents):
            try:
                st = parent.stat()
            except OSError:
                return True  # reported when the path itself is looked at
            if not self.account.may(st, X):
                if parent not in self._blocked:
                    self._blocked.add(parent)
                    self._denied(key, parent, st, "entered (searched)")
                return False
        return True

    def readable_file(self, key: str, name: str) -> os.stat_result | None:
        path = Path(name)
        try:
            st = path.stat()
        except FileNotFoundError:
            self.problems.append(f"{key}: {path} does not exist")
            return None
        except OSError as exc:
            self.problems.append(f"{key}: cannot read {path} ({exc.strerror})")
            return None
        if not stat.S_ISREG(st.st_mode):
            self.problems.append(f"{key}: {path} is not a regular file")
            return None
        if not self._reach(key, path):
            return None
        if self.account is None:
            if not os.access(path, os.R_OK):
                self.problems.append(f"{key}: cannot read {path} (permission denied)")
                return None
        elif not self.account.may(st, R):
            self._denied(key, path, st, "read")
            return None
        return st

    def writable_dir(self, key: str, name: str) -> None:
        path = Path(name)
        if not path.exists():
            # The service (or systemd's StateDirectory=) creates it: its nearest parent must allow that.
            parent = next((p for p in path.absolute().parents if p.exists()), Path("/"))
            if self.account is not None:
                self.warnings.append(
                    f"{key}: {path} does not exist yet; systemd creates it for the service "
                    "(StateDirectory=), or the first start does"
                )
            elif not os.access(parent, os.W_OK | os.X_OK):
                self.problems.append(
                    f"{key}: {path} does not exist and cannot be created in {parent} (permission denied)"
                )
            return
        if not path.is_dir():
            self.problems.append(f"{key}: {path} is not a directory")
            return
        if not self._reach(key, path):
            return
        entries = [(path, W | X, "written")] + [
            (path / f, R | W, "written") for f in STATE_FILES if (path / f).exists()
        ]
        for item, bits, what in entries:
            st = item.stat()
            if self.account is None:
                if not os.access(item, (os.W_OK | os.X_OK) if item == path else (os.R_OK | os.W_OK)):
                    self.problems.append(f"{key}: {item} is not writable (permission denied)")
            elif not self.account.may(st, bits):
                self._denied(key, item, st, what)


def preflight(
    settings: Settings, account: Account | None = None, *, check_audio: bool = True
) -> tuple[list[str], list[str]]:
    """(problems that stop the service at start, warnings) for these settings; see the module docstring.

    account: whose access to check (None = this process); check_audio=False when a scenario
    replaces the configured audio source (`run --simulate --scenario`).
    """
    c = _Checker(account)
    m, st = settings.mqtt, settings.station
    if settings.source not in ("defaults", "config", "") and Path(settings.source).exists():
        c.readable_file("config", settings.source)
    if st.profile.endswith(".toml"):
        c.readable_file("station.profile", st.profile)
    try:
        profile = load_profile(st.profile, settings.profile)
    except ConfigError as exc:
        c.problems += [f"{exc.source}: {p}" if exc.source not in ("config", "") else p for p in exc.problems]
        profile = None
    if check_audio and settings.audio.backend == "wav":
        for key in ("wav_tx", "wav_rx"):
            if getattr(settings.audio, key):
                c.readable_file(f"audio.{key}", getattr(settings.audio, key))
    if not m.brokers:
        for key in ("password_file", "ca_file", "cert_file", "key_file"):
            if getattr(m, key):
                c.warnings.append(f"mqtt.{key}: not used: mqtt.brokers is empty (no publishing)")
        return c.problems, c.warnings
    if m.password_file:
        pst = c.readable_file("mqtt.password_file", m.password_file)
        if pst is not None and pst.st_mode & 0o077:
            c.problems.append(
                f"mqtt.password_file: {m.password_file} is accessible by group or others "
                f"(mode {stat.S_IMODE(pst.st_mode):04o}); the service refuses it: "
                f"run chmod 600 {m.password_file}"
            )
    tls = parse_broker(m.brokers[0])[0]
    for key in ("ca_file", "cert_file", "key_file"):
        if getattr(m, key):
            if tls:
                c.readable_file(f"mqtt.{key}", getattr(m, key))
            else:
                c.warnings.append(f"mqtt.{key}: not used: the brokers are mqtt://, not mqtts://")
    if tls and bool(m.cert_file) != bool(m.key_file):
        c.problems.append("mqtt.cert_file: a client certificate needs mqtt.key_file too (and vice versa)")
    c.writable_dir("station.state_dir", st.state_dir)
    try:
        persisted, problem = read_overrides(st.state_dir)
    except StorageError as exc:  # the service sets it aside and runs on the config file's values
        persisted, problem = {}, str(exc)
    if problem:
        c.warnings.append(f"{problem}; the service will log this and not apply them")
    elif persisted and profile is not None:
        try:
            load_profile(st.profile, {**settings.profile, **persisted})
        except ConfigError as exc:
            c.warnings.append(
                f"{Path(st.state_dir) / OVERRIDES_FILE}: persisted overrides contradict the "
                f"profile ({exc.problems[0]}); the service will log this and not apply them"
            )
    try:
        load_agent(st.state_dir)
    except StorageError as exc:
        c.warnings.append(f"{exc}; the service will set it aside and use station.agent")
    return c.problems, c.warnings
