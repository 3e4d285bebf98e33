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
persisted by `close()`.

Size cap (`max_mb`, payload bytes plus a per-row overhead):
  1. over the cap, the oldest *telemetry* rows are deleted first;
  2. a new telemetry row that still does not fit is dropped (`put_telemetry` returns False);
  3. events are never dropped: an event that does not fit is stored anyway and the outbox
     reports a `storage` fault through `on_fault` (cleared once the depth falls under 90 %
     of the cap). The disk, not the cap, is then the limit.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from firmware.errors import StorageError
from firmware.protocol.envelope import Event, to_json

ROW_OVERHEAD_BYTES = 64  # rough per-row cost of the index and row header, for the cap
CLEAR_FRACTION = 0.9  # the storage fault clears below this fraction of the cap

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
_TOTALS = ("SELECT COUNT(*), COALESCE(SUM(kind = 'event'), 0), "
           f"COALESCE(SUM(LENGTH(payload) + {ROW_OVERHEAD_BYTES}), 0) FROM outbox")


class Row(NamedTuple):
    pos: int
    kind: str  # 'event' | 'telemetry'
    seq: int | None
    payload: bytes


FaultFn = Callable[[str, str, bool], None]  # (component, detail, cleared)


class Outbox:
    """A durable FIFO of MQTT payloads ordered by `seq`; also the station's durable SeqSource."""

    def __init__(self, path: str | Path, max_mb: float = 64.0, on_fault: FaultFn | None = None):
        self.path = Path(path)
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.on_fault = on_fault
        self.over_cap = False
        self.dropped_telemetry = 0
        self._lock = threading.Lock()
        self._lock_fd = self._claim()
        try:
            self._db = self._open()
        except StorageError:
            os.close(self._lock_fd)
            raise
        try:
            with self._db:
                hwm = self._meta("seq_hwm")
                top = self._db.execute("SELECT MAX(seq) FROM outbox").fetchone()[0] or 0
                self._next_seq = max(hwm, top) + 1
                self._depth, self._events, self._bytes = self._db.execute(_TOTALS).fetchone()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            os.close(self._lock_fd)
            raise self._error(exc) from None

    @classmethod
    def in_state_dir(cls, state_dir: str | Path, max_mb: float = 64.0, on_fault: FaultFn | None = None) -> "Outbox":
        """Open `<state_dir>/outbox.db`, creating the directory if needed."""
        state_dir = Path(state_dir)
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{state_dir}: cannot create the state directory ({exc.strerror})") from None
        return cls(state_dir / "outbox.db", max_mb, on_fault)

    def _claim(self) -> int:
        """One process per outbox: two would hand out the same `seq` numbers."""
        lock_path = f"{self.path}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"{self.path.parent}: state directory is not writable ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StorageError(f"{self.path}: outbox is in use by another station process (pid {owner}); "
                               "give each process its own state_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # WAL + NORMAL may lose the last commits on power loss
            db.executescript(_SCHEMA)
            db.isolation_level = "DEFERRED"  # explicit transactions via `with db:` from here on
        except sqlite3.DatabaseError as exc:
            db.close()
            raise self._error(exc) from None
        return db

    def _error(self, exc: Exception) -> StorageError:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            return StorageError(f"{self.path}: outbox is corrupt ({text}); move it aside to start a new one")
        if "unable to open" in text or "readonly" in text or "read-only" in text:
            return StorageError(f"{self.path}: state directory is not writable ({text})")
        return StorageError(f"{self.path}: outbox error ({text})")

    def _meta(self, key: str, default: int = 0) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)", (key, value))

    # --- SeqSource -------------------------------------------------------------------------
    def next_seq(self) -> int:
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            return seq

    # --- writing ---------------------------------------------------------------------------
    def put(self, event: Event) -> None:
        """Commit one event (it must carry its `seq`); returns once it is on disk."""
        seq = event["seq"]
        payload = to_json(event).encode()
        with self._lock:
            try:
                with self._db:
                    self._make_room(len(payload))
                    self._db.execute("INSERT INTO outbox (sort, kind, seq, payload) VALUES (?, 'event', ?, ?)",
                                     (seq, seq, payload))
                    self._set_meta("seq_hwm", seq)
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            self._next_seq = max(self._next_seq, seq + 1)
            self._depth += 1
            self._events += 1
            self._bytes += len(payload) + ROW_OVERHEAD_BYTES
            newly_over = self._bytes > self.max_bytes and not self.over_cap
            if newly_over:
                self.over_cap = True
        if newly_over:  # outside the lock: the fault event the station emits comes back through put()
            self._fault(f"outbox over its cap of {self.max_bytes / 1048576:.1f} MB with only events left "
                        f"({self._events} events); keeping them", cleared=False)

    def put_telemetry(self, data: dict | bytes) -> bool:
        """Queue one telemetry payload; False when it was dropped to respect the cap."""
        payload = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
        with self._lock:
            try:
                with self._db:
                    if not self._make_room(len(payload)):
                        self.dropped_telemetry += 1
                        return False
                    self._db.execute("INSERT INTO outbox (sort, kind, seq, payload) VALUES (?, 'telemetry', NULL, ?)",
                                     (self._next_seq - 1, payload))
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            self._depth += 1
            self._bytes += len(payload) + ROW_OVERHEAD_BYTES
            return True

    def _make_room(self, new_bytes: int) -> bool:
        """Delete the oldest telemetry until `new_bytes` more fit; False if they still do not."""
        need = self._bytes + new_bytes + ROW_OVERHEAD_BYTES - self.max_bytes
        while need > 0:
            rows = self._db.execute("SELECT pos, LENGTH(payload) FROM outbox WHERE kind = 'telemetry' "
                                    "ORDER BY pos LIMIT 256").fetchall()
            if not rows:
                return False
            doomed = []
            for pos, size in rows:
                doomed.append(pos)
                need -= size + ROW_OVERHEAD_BYTES
                self._bytes -= size + ROW_OVERHEAD_BYTES
                if need <= 0:
                    break
            self._db.executemany("DELETE FROM outbox WHERE pos = ?", [(p,) for p in doomed])
            self._depth -= len(doomed)
            self.dropped_telemetry += len(doomed)
        return True

    # --- reading and acknowledging ---------------------------------------------------------
    def pending(self, limit: int, skip: Iterable[int] = ()) -> list[Row]:
        """The first `limit` rows in send order, leaving out positions in `skip` (in flight)."""
        skip = set(skip)
        with self._lock:
            try:
                rows = self._db.execute("SELECT pos, kind, seq, payload FROM outbox ORDER BY sort, pos LIMIT ?",
                                        (limit + len(skip),)).fetchall()
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
            self._fault(f"outbox back under its cap ({self._bytes / 1048576:.1f} MB)", cleared=True)
        return gone[0]

    def _fault(self, detail: str, cleared: bool) -> None:
        if self.on_fault is not None:
            self.on_fault("storage", detail, cleared)

    # --- session numbers and status ---------------------------------------------------------
    def next_session(self) -> int:
        """A durable, increasing MQTT session number (Sparkplug's bdSeq) for the next connect."""
        with self._lock:
            try:
                with self._db:
                    value = self._meta("bdseq") + 1
                    self._set_meta("bdseq", value)
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            return value

    @property
    def depth(self) -> int:
        """Rows waiting for a PUBACK (events and telemetry)."""
        return self._depth

    @property
    def event_depth(self) -> int:
        return self._events

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        """Persist the seq high-water mark and close; safe to call twice."""
        with self._lock:
            if self._db is None:
                return
            try:
                with self._db:
                    self._set_meta("seq_hwm", self._next_seq - 1)
                self._db.close()
            except sqlite3.Error:
                pass  # closing must not raise; an unsaved mark only matters for seqs never put()
            self._db = None
            os.close(self._lock_fd)  # releases the flock

    def __enter__(self) -> "Outbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
