"""Durable on-disk outbox: every event is committed here before MQTT sees it.

SQLite in WAL mode at `<state_dir>/outbox.db`, `synchronous=FULL` so a committed event
survives a power cut. A row is deleted only when the broker acknowledged it (PUBACK), so a
broker outage, a network cut, a crash or a power cut loses nothing; after reconnect the
backlog is read back in `seq` order (telemetry rows sort after the events issued before
them).

The outbox is also the station's durable `SeqSource`: `next_seq()` hands out
max(stored high-water mark, highest seq in the outbox) + 1, and `put()` raises the
high-water mark in the same transaction as the event, so `seq` never goes back after a
restart, even when the outbox was fully drained. Numbers handed out but never `put()` are
persisted by `close()`. So that a deleted, emptied or corrupt `outbox.db` cannot restart
`seq` at 1 either, numbers are also reserved ahead in blocks of SEQ_RESERVE in a small
file beside it, `<state_dir>/seq.hwm` (written atomically and fsynced, once per block and
at `close()`); an outbox that does not know its high-water mark continues after that
reservation (a jump of at most SEQ_RESERVE, which consumers see as the gap it is).

A corrupt `outbox.db` (SQLite: not a database, malformed) is moved aside to
`outbox.db.corrupt-<UTC time>` for inspection, a new one is started, and a `storage` fault
is reported through `on_fault` (as soon as one is set); the station keeps running.

Size cap (`max_mb`, payload bytes plus a per-row overhead):
  1. over the cap, the oldest *telemetry* rows are deleted first;
  2. a new telemetry row that still does not fit is dropped (`put_telemetry` returns False);
  3. events are never dropped: an event that does not fit is stored anyway and the outbox
     reports a `storage` fault through `on_fault` (cleared once the depth falls under 90 %
     of the cap). The disk, not the cap, is then the limit.

When the disk is full (or the file cannot be written for another reason), `put()` keeps the
event in memory, in order, behind any already held (at most HOLD_MAX_EVENTS; beyond that
an event is refused with a StorageError), reports a `storage` fault ("disk full ...") at
once, and every later `put()` and `flush_held()` (the sender calls it at least once a
second) tries to write the held events in `seq` order; the fault is cleared when the last
one is on disk. Held events are not sent before they are on disk. Telemetry is dropped
while the disk is full.
"""

from __future__ import annotations

import collections
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from firmware.errors import ConfigError, StationError, StorageError
from firmware.protocol.envelope import Event, to_json
from firmware.reporting.statefile import foreign_owner, read_state_text, user_name

log = logging.getLogger(__name__)

ROW_OVERHEAD_BYTES = 64  # rough per-row cost of the index and row header, for the cap
CLEAR_FRACTION = 0.9  # the storage fault clears below this fraction of the cap
SEQ_RESERVE = 1000  # seq numbers reserved ahead in seq.hwm: one small fsynced write per block
SEQ_FILE = "seq.hwm"
HOLD_MAX_EVENTS = 10_000  # events kept in memory while the disk is full (~hours of calls)
FLUSH_BATCH = 500  # held events written per transaction when space returns
_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    pos     INTEGER PRIMARY KEY AUTOINCREMENT,
    sort    INTEGER NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('event', 'telemetry')),
    seq     INTEGER,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (sort, pos);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

# (rows, event rows, bytes as counted against the cap) of the rows selected by an optional WHERE
_TOTALS = (
    "SELECT COUNT(*), COALESCE(SUM(kind = 'event'), 0), "
    f"COALESCE(SUM(LENGTH(payload) + {ROW_OVERHEAD_BYTES}), 0) FROM outbox"
)


class Row(NamedTuple):
    pos: int
    kind: str  # 'event' | 'telemetry'
    seq: int | None
    payload: bytes


FaultFn = Callable[[str, str, bool], None]  # (component, detail, cleared)


def _state_dir_error(detail: str) -> ConfigError:
    """An unusable state directory is the set-up's problem (station.state_dir, its owner, or a
    second process on it), not a passing one: exit 78, and systemd does not restart in a loop."""
    return ConfigError(detail, "station.state_dir")


def _refuse_root_in_foreign_dir(state_dir: Path) -> None:
    """As root, refuse a state directory that belongs to another user (the service's,
    `/var/lib/headset-station`): files created here would be root's, and the service, which
    runs as that user, could no longer write its outbox. The hint names the user to run as."""
    uid = foreign_owner(state_dir)
    if uid is not None:
        user = user_name(uid)
        raise _state_dir_error(
            f"{state_dir}: owned by {user}: run as root, this would leave root-owned files "
            f"the service cannot write; run it as that user: sudo -u {user} headset-station ..."
        )


def _foreign_file(path: Path) -> str | None:
    """Why `path` cannot be opened when it exists but belongs to another user (say root, left by a
    `sudo headset-station ...` run), with the command that fixes it; None otherwise."""
    try:
        st = path.stat()
        dir_uid = path.parent.stat().st_uid
    except OSError:
        return None
    if st.st_uid == os.geteuid():
        return None
    return (
        f"{path} is owned by {user_name(st.st_uid)} (left by a run as root?), not {user_name(os.geteuid())}; "
        f"fix it with: sudo chown -R {user_name(dir_uid)}: {path.parent}"
    )


def _is_corrupt(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.split("(")[0] in _CORRUPT or "malformed" in str(exc) or "not a database" in str(exc)


class Outbox:
    """A durable FIFO of MQTT payloads ordered by `seq`; also the station's durable SeqSource."""

    def __init__(self, path: str | Path, max_mb: float = 64.0, on_fault: FaultFn | None = None):
        self.path = Path(path)
        self.max_bytes = int(max_mb * 1024 * 1024)
        self._on_fault = on_fault
        self.over_cap = False
        self.dropped_telemetry = 0
        self.refused_events = 0  # events refused because the disk was full and the memory queue too
        self._lock = threading.Lock()
        self._held: collections.deque[tuple[int, bytes]] = collections.deque()  # (seq, payload), disk full
        self._problems: dict[str, str] = {}  # active storage problems: "cap"/"disk"/"corrupt" -> detail
        self._fault_lock = threading.Lock()
        self._open_fault: str | None = None  # found while opening; reported once someone listens
        self._seq_file = self.path.with_name(SEQ_FILE)
        self._reserved = self._read_reserved()
        self._bdseq = 0
        self._lock_fd = self._claim()
        try:
            self._db, known = self._open_or_replace()
        except StationError:
            os.close(self._lock_fd)
            raise
        hwm, top, totals = known
        if hwm is None and top is None:
            # A new, deleted, emptied or replaced outbox: continue after the reservation.
            if self._reserved:
                log.warning(
                    "%s has no seq high-water mark (new, deleted or emptied); seq continues after %d from %s",
                    self.path,
                    self._reserved,
                    self._seq_file,
                )
            self._next_seq = self._reserved + 1
        else:
            last = max(hwm or 0, top or 0)
            stale = last < self._reserved - SEQ_RESERVE  # an older copy of the file: never reuse numbers
            self._next_seq = (self._reserved if stale else last) + 1
        self._depth, self._events, self._bytes = totals
        self._report_open_fault()

    @classmethod
    def in_state_dir(cls, state_dir: str | Path, max_mb: float = 64.0, on_fault: FaultFn | None = None) -> Outbox:
        """Open `<state_dir>/outbox.db`, creating the directory if needed."""
        state_dir = Path(state_dir)
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _state_dir_error(f"{state_dir}: cannot create the state directory ({exc.strerror})") from None
        _refuse_root_in_foreign_dir(state_dir)
        return cls(state_dir / "outbox.db", max_mb, on_fault)

    @property
    def on_fault(self) -> FaultFn | None:
        return self._on_fault

    @on_fault.setter
    def on_fault(self, fn: FaultFn | None) -> None:
        self._on_fault = fn
        self._report_open_fault()

    def _report_open_fault(self) -> None:
        if self._open_fault is not None and self._on_fault is not None:
            detail, self._open_fault = self._open_fault, None
            self._fault("corrupt", detail, cleared=False)

    def _claim(self) -> int:
        """One process per outbox: two would hand out the same `seq` numbers."""
        lock_path = f"{self.path}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            left = _foreign_file(Path(lock_path))
            if left:
                raise _state_dir_error(left) from None
            raise _state_dir_error(f"{self.path.parent}: state directory is not writable ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise _state_dir_error(
                f"{self.path}: outbox is in use by another station process (pid {owner}); "
                "give each process its own state_dir"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid is only a hint for the message above (a full disk must not stop us)
        return fd

    def _open_or_replace(self):
        """Open the outbox; a corrupt one is moved aside and a new one started."""
        try:
            return self._open()
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise self._error(exc) from None
            reason = str(exc)
            aside = self._move_aside(reason)
        try:
            opened = self._open()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        self._open_fault = (
            f"{self.path} was corrupt ({reason}); moved it aside to {aside.name} "
            "and started a new outbox (its unsent events are in the old file)"
        )
        log.error("storage: %s", self._open_fault)
        return opened

    def _move_aside(self, reason: str) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            for suffix in ("-wal", "-shm", ""):  # the database file last: its journal goes with it
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    os.replace(src, f"{aside}{suffix}")
        except OSError as err:
            raise StorageError(
                f"{self.path}: outbox is corrupt ({reason}) and cannot be moved aside "
                f"({err.strerror}); move it away by hand"
            ) from None
        return aside

    def _open(self):
        """(connection, (seq_hwm or None, highest seq or None, totals)); sqlite3 errors pass through."""
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # WAL + NORMAL may lose the last commits on power loss
            db.executescript(_SCHEMA)
            db.isolation_level = "DEFERRED"  # explicit transactions via `with db:` from here on
            row = db.execute("SELECT value FROM meta WHERE key = 'seq_hwm'").fetchone()
            bd = db.execute("SELECT value FROM meta WHERE key = 'bdseq'").fetchone()
            top = db.execute("SELECT MAX(seq) FROM outbox").fetchone()[0]
            totals = db.execute(_TOTALS).fetchone()  # reads every row: finds most corruption now
        except sqlite3.DatabaseError:
            db.close()
            raise
        self._bdseq = bd[0] if bd else 0
        return db, (row[0] if row else None, top, totals)

    def _error(self, exc: Exception) -> StationError:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            return StorageError(f"{self.path}: outbox is corrupt ({text}); move it aside to start a new one")
        if "unable to open" in text or "readonly" in text or "read-only" in text:
            return _state_dir_error(f"{self.path}: state directory is not writable ({text})")
        if "full" in text:
            return StorageError(f"{self.path}: disk full ({text})")
        return StorageError(f"{self.path}: outbox error ({text})")

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
            (key, value),
        )

    # --- SeqSource -------------------------------------------------------------------------
    def _read_reserved(self) -> int:
        try:
            return max(0, int(read_state_text(self._seq_file, 64).split()[0]))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, IndexError) as exc:
            log.warning("%s: unreadable (%s); relying on the outbox alone for seq", self._seq_file, exc)
            return 0

    def _write_reserved(self, value: int) -> bool:
        """Atomically replace seq.hwm (temp file, fsync, rename, fsync of the directory)."""
        tmp = self._seq_file.with_name(SEQ_FILE + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, f"{value}\n".encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self._seq_file)
            dfd = os.open(self._seq_file.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            log.warning(
                "%s: cannot reserve seq numbers (%s); retrying with the next event", self._seq_file, exc.strerror
            )
            return False
        self._reserved = value
        return True

    def next_seq(self) -> int:
        with self._lock:
            seq = self._next_seq
            if seq > self._reserved:
                self._write_reserved(seq + SEQ_RESERVE - 1)
            self._next_seq += 1
            return seq

    # --- writing ---------------------------------------------------------------------------
    def put(self, event: Event) -> None:
        """Commit one event (it must carry its `seq`); returns once it is on disk, or held in
        memory in order when the disk is full (StorageError only if that queue is full too)."""
        seq = event["seq"]
        payload = to_json(event).encode()
        faults: list[tuple[str, str, bool]] = []
        with self._lock:
            self._next_seq = max(self._next_seq, seq + 1)
            if self._held:  # newer events queue behind the held ones: order is kept
                self._hold(seq, payload)
                self._flush_held(faults)
            else:
                try:
                    self._insert_events([(seq, payload)], faults)
                except sqlite3.DatabaseError as exc:
                    self._hold(seq, payload)
                    faults.append(self._disk_problem(exc))
        for fault in faults:  # outside the lock: the fault event the station emits comes back through put()
            self._fault(*fault)

    def _insert_events(self, items: list[tuple[int, bytes]], faults: list) -> None:
        """One transaction; counters change only once it committed."""
        size = sum(len(p) + ROW_OVERHEAD_BYTES for _s, p in items)
        with self._db:
            _fits, gone_rows, gone_bytes = self._make_room(size)
            self._db.executemany(
                "INSERT INTO outbox (sort, kind, seq, payload) VALUES (?, 'event', ?, ?)",
                [(seq, seq, payload) for seq, payload in items],
            )
            self._set_meta("seq_hwm", max(seq for seq, _p in items))
        self._depth += len(items) - gone_rows
        self._events += len(items)
        self._bytes += size - gone_bytes
        self.dropped_telemetry += gone_rows
        if self._bytes > self.max_bytes and not self.over_cap:
            self.over_cap = True
            detail = (
                f"outbox over its cap of {self.max_bytes / 1048576:.1f} MB with only events "
                f"left ({self._events} events); keeping them"
            )
            faults.append(("cap", detail, False))

    def _hold(self, seq: int, payload: bytes) -> None:
        if len(self._held) >= HOLD_MAX_EVENTS:
            self.refused_events += 1
            raise StorageError(
                f"{self.path}: disk full and {len(self._held)} events already held in memory; event seq {seq} not kept"
            )
        self._held.append((seq, payload))

    def _disk_problem(self, exc: sqlite3.Error) -> tuple[str, str, bool]:
        text = str(exc)
        what = "disk full" if "full" in text else "cannot write the outbox"
        detail = f"{what}: {self.path} ({text}); holding events in memory (up to {HOLD_MAX_EVENTS}) and retrying"
        return ("disk", detail, False)

    def _flush_held(self, faults: list) -> None:
        while self._held:
            batch = [self._held[i] for i in range(min(FLUSH_BATCH, len(self._held)))]
            try:
                self._insert_events(batch, faults)
            except sqlite3.DatabaseError:
                return
            for _ in batch:
                self._held.popleft()
        faults.append(("disk", f"{self.path}: writable again; every held event is on disk", True))

    def flush_held(self) -> int:
        """Try to write the events held in memory (in seq order); returns how many are left."""
        faults: list[tuple[str, str, bool]] = []
        with self._lock:
            if self._held:
                self._flush_held(faults)
            left = len(self._held)
        for fault in faults:
            self._fault(*fault)
        return left

    @property
    def held(self) -> int:
        """Events kept in memory because the outbox could not be written."""
        return len(self._held)

    def put_telemetry(self, data: dict | bytes) -> bool:
        """Queue one telemetry payload; False when it was dropped (the cap, or a full disk)."""
        payload = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
        size = len(payload) + ROW_OVERHEAD_BYTES
        with self._lock:
            if self._held:
                self.dropped_telemetry += 1
                return False
            try:
                with self._db:
                    fits, gone_rows, gone_bytes = self._make_room(size)
                    if fits:
                        self._db.execute(
                            "INSERT INTO outbox (sort, kind, seq, payload) VALUES (?, 'telemetry', NULL, ?)",
                            (self._next_seq - 1, payload),
                        )
            except sqlite3.DatabaseError as exc:
                log.debug("telemetry dropped: %s", exc)
                self.dropped_telemetry += 1
                return False
            self._depth += (1 if fits else 0) - gone_rows
            self._bytes += (size if fits else 0) - gone_bytes
            self.dropped_telemetry += gone_rows + (0 if fits else 1)
            return fits

    def _make_room(self, new_bytes: int) -> tuple[bool, int, int]:
        """Delete the oldest telemetry until `new_bytes` more fit, inside the caller's transaction:
        (fits, rows deleted, bytes deleted); the caller applies the counts once it committed."""
        need = self._bytes + new_bytes - self.max_bytes
        gone_rows = gone_bytes = 0
        last_pos = 0
        while need > 0:
            rows = self._db.execute(
                "SELECT pos, LENGTH(payload) FROM outbox WHERE kind = 'telemetry' AND pos > ? ORDER BY pos LIMIT 256",
                (last_pos,),
            ).fetchall()
            if not rows:
                return False, gone_rows, gone_bytes
            doomed = []
            for pos, size in rows:
                doomed.append(pos)
                last_pos = pos
                need -= size + ROW_OVERHEAD_BYTES
                gone_bytes += size + ROW_OVERHEAD_BYTES
                if need <= 0:
                    break
            self._db.executemany("DELETE FROM outbox WHERE pos = ?", [(p,) for p in doomed])
            gone_rows += len(doomed)
        return True, gone_rows, gone_bytes

    # --- reading and acknowledging ---------------------------------------------------------
    def pending(self, limit: int, skip: Iterable[int] = ()) -> list[Row]:
        """The first `limit` rows in send order, leaving out positions in `skip` (in flight)."""
        skip = set(skip)
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT pos, kind, seq, payload FROM outbox ORDER BY sort, pos LIMIT ?", (limit + len(skip),)
                ).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from None
        return [Row(*r) for r in rows if r[0] not in skip][:limit]

    def ack(self, positions: Iterable[int]) -> int:
        """Delete acknowledged rows (one transaction); returns how many were still there."""
        positions = list(positions)
        if not positions:
            return 0
        with self._lock:
            try:
                with self._db:
                    marks = ",".join("?" * len(positions))
                    gone = self._db.execute(f"{_TOTALS} WHERE pos IN ({marks})", positions).fetchone()
                    self._db.execute(f"DELETE FROM outbox WHERE pos IN ({marks})", positions)
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            self._depth -= gone[0]
            self._events -= gone[1]
            self._bytes -= gone[2]
            cleared = self.over_cap and self._bytes < self.max_bytes * CLEAR_FRACTION
            if cleared:
                self.over_cap = False
        if cleared:
            self._fault("cap", f"outbox back under its cap ({self._bytes / 1048576:.1f} MB)", cleared=True)
        return gone[0]

    def _fault(self, problem: str, detail: str, cleared: bool) -> None:
        """A `storage` fault for each new problem (cap, disk, corrupt); cleared with the last one."""
        with self._fault_lock:  # put() (rules loop) and ack() (sender) both get here
            if cleared:
                if self._problems.pop(problem, None) is None:
                    return
                if self._problems:  # another storage problem still stands
                    log.info("storage: %s", detail)
                    return
            else:
                self._problems[problem] = detail
        if self._on_fault is not None:
            self._on_fault("storage", detail, cleared)

    # --- session numbers and status ---------------------------------------------------------
    def next_session(self) -> int:
        """A durable, increasing MQTT session number (Sparkplug's bdSeq) for the next connect."""
        with self._lock:
            self._bdseq += 1
            try:
                with self._db:
                    self._set_meta("bdseq", self._bdseq)
            except sqlite3.Error as exc:  # a full disk: the number still increases in this process
                log.warning("storage: session number %d not persisted (%s)", self._bdseq, exc)
            return self._bdseq

    @property
    def depth(self) -> int:
        """Rows waiting for a PUBACK (events and telemetry), not counting held events."""
        return self._depth

    @property
    def event_depth(self) -> int:
        return self._events

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        """Write what is held if possible, persist the seq high-water mark and close; safe twice."""
        faults: list = []
        with self._lock:
            if self._db is None:
                return
            if self._held:
                self._flush_held(faults)
                if self._held:
                    log.error(
                        "storage: %d events held in memory could not be written to %s and are lost",
                        len(self._held),
                        self.path,
                    )
            last = self._next_seq - 1
            try:
                with self._db:
                    self._set_meta("seq_hwm", last)
                self._db.close()
            except sqlite3.Error:
                pass  # closing must not raise; an unsaved mark only matters for seqs never put()
            if last != self._reserved:
                self._write_reserved(last)  # exact again: a later lost outbox continues without a gap
            self._db = None
            os.close(self._lock_fd)  # releases the flock

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
