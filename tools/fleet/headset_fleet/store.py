"""The central event store: one table of station events, deduplicated by event `id`.

SQLite by default (`sqlite:///relative/path`, `sqlite:////absolute/path` or a plain path),
PostgreSQL for a URL starting `postgresql://` (psycopg 3). Both use
`INSERT ... ON CONFLICT (id) DO NOTHING`, so a redelivered event is stored once however
often it arrives; `insert_many` commits before it returns, which is what lets the
collector acknowledge to the broker only after the event is safe.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path

from firmware.protocol.envelope import to_json
from headset_fleet.errors import FleetStoreError

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS events (
        id TEXT PRIMARY KEY,
        station TEXT NOT NULL,
        site TEXT NOT NULL,
        type TEXT NOT NULL,
        seq BIGINT,
        ts TEXT NOT NULL,
        call TEXT,
        body TEXT NOT NULL,
        received_s DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)",
)
COLUMNS = "id, station, site, type, seq, ts, call, body, received_s"


def event_row(site: str, event: dict, received_s: float) -> tuple:
    """The table row for one event; raises ValueError for anything either back end would refuse,
    so one malformed message is rejected alone instead of failing (and retrying) its whole batch."""
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not event["id"]:
        raise ValueError("event has no string id")
    for key in ("station", "type", "ts"):
        if not isinstance(event.get(key), str):
            raise ValueError(f"event {event['id']!r} has no string {key}")
    call = event.get("call")
    call = None if call is None else str(call)
    texts = (event["id"], event["station"], site, event["type"], event["ts"], call or "")
    if any("\x00" in t for t in texts):
        raise ValueError(f"event {event['id']!r} has a NUL character")  # PostgreSQL text refuses it
    try:
        datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"event {event['id']!r}: ts {event['ts']!r} is not ISO 8601") from None
    seq = event.get("seq")
    seq = seq if isinstance(seq, int) and not isinstance(seq, bool) and abs(seq) < 2**63 else None
    body = to_json(event)
    return (event["id"], event["station"], site, event["type"], seq, event["ts"], call, body, received_s)


class EventStore:
    """Common SQL for both back ends; subclasses provide the connection and placeholder."""

    placeholder = "?"
    url = ""

    def __init__(self, conn):
        self.conn = conn
        cur = self.conn.cursor()
        for stmt in SCHEMA:
            cur.execute(stmt)
        self.conn.commit()

    def insert_many(self, rows: list[tuple]) -> int:
        """Insert rows, skipping ids already stored, and commit; returns rows actually added."""
        if not rows:
            return 0
        marks = ", ".join([self.placeholder] * 9)
        sql = f"INSERT INTO events ({COLUMNS}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"
        try:
            self._reconnect_if_broken()
            cur = self.conn.cursor()
            cur.executemany(sql, rows)
            added = cur.rowcount
            self.conn.commit()
        except Exception as exc:
            self._rollback()
            raise FleetStoreError(f"{self.url}: cannot store events: {exc}".splitlines()[0]) from None
        return max(added, 0)

    def _reconnect_if_broken(self) -> None:
        """PostgreSQL: a server restart leaves the connection closed; open a new one."""

    def _rollback(self):
        try:
            self.conn.rollback()
        except Exception:  # the connection may be gone; the next call reports that
            pass

    def count(self) -> int:
        cur = self.conn.cursor()
        cur.execute("SELECT COUNT(*) FROM events")
        return int(cur.fetchone()[0])

    def events_for_day(self, day: date) -> list[dict]:
        """Every stored event whose `ts` (UTC) falls on `day`, in (station, seq) order, with `site`."""
        lo, hi = day.isoformat(), (day + timedelta(days=1)).isoformat()
        p = self.placeholder
        cur = self.conn.cursor()
        cur.execute(f"SELECT site, body FROM events WHERE ts >= {p} AND ts < {p} ORDER BY station, seq, ts", (lo, hi))
        out = []
        for site, body in cur.fetchall():
            event = json.loads(body)
            event["site"] = site
            out.append(event)
        return out

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SqliteStore(EventStore):
    placeholder = "?"

    def __init__(self, path: str, create: bool = True):
        self.url = f"sqlite:///{path}"
        if not create and not Path(path).is_file():
            raise FleetStoreError(f"{self.url}: no such database file")
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")  # readers (report) do not block the collector
            conn.execute("PRAGMA synchronous=FULL")  # an acked event must survive a power cut
            super().__init__(conn)
        except (sqlite3.Error, OSError) as exc:
            raise FleetStoreError(f"{self.url}: cannot open: {exc}") from None


class PostgresStore(EventStore):
    placeholder = "%s"

    def __init__(self, url: str):
        self.url = url.split("@")[-1]  # never echo a password
        try:
            import psycopg
        except ImportError:
            raise FleetStoreError("PostgreSQL needs psycopg: pip install 'psycopg[binary]' (a dependency of headset-fleet)") from None
        self._dsn = url
        try:
            conn = psycopg.connect(url, connect_timeout=10)
            super().__init__(conn)
        except psycopg.Error as exc:
            raise FleetStoreError(f"{self.url}: cannot open: {str(exc).strip().splitlines()[0]}") from None

    def _reconnect_if_broken(self) -> None:
        if self.conn.closed or self.conn.broken:
            import psycopg
            self.conn = psycopg.connect(self._dsn, connect_timeout=10)


def open_store(url: str, create: bool = True) -> EventStore:
    """Open (and create the table in) the store named by `url`; create=False refuses to make
    a new SQLite file (a report on a mistyped path should fail, not print an empty day)."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///"):], create)
    if "://" in url:
        raise FleetStoreError(f"{url}: unknown database URL (use sqlite:///PATH or postgresql://...)")
    return SqliteStore(url, create)
