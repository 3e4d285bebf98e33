"""The central event store: one table of station events, deduplicated by event `id`.

SQLite by default (`sqlite:///relative/path`, `sqlite:////absolute/path` or a plain path),
PostgreSQL for a URL starting `postgresql://` (psycopg 3). Both use
`INSERT ... ON CONFLICT (id) DO NOTHING`, so a redelivered event is stored once however
often it arrives; `insert_many` commits before it returns, which is what lets the
collector acknowledge to the broker only after the event is safe.

Columns: `id`, `station`, `site` (from the topic), `type`, `seq`, `ts`, `call`, `body` (the
whole event), `received_s`, and `desk`, `agent` (the station's additive envelope fields,
NULL when the station did not send them).

A second table, `stations` (site, station, desk, agent, tz, seen_s), holds what each
station last said about itself in its `status` birth (the collector records it), so the
report knows a site's time zone without an inventory (`site_zones`).

- PostgreSQL is typed for standard tools (Grafana, psql): `ts timestamptz`, `body jsonb`,
  with indexes on (ts), (station, ts), (type, ts), (site, ts) and (call). A store created
  by an older version (`ts`/`body` TEXT, no desk/agent) is migrated when it is opened:
  one transaction under an advisory lock, `ALTER ... TYPE timestamptz USING ts::timestamptz`,
  `... TYPE jsonb USING body::jsonb`; it rewrites the table once (an exclusive lock for
  the time that takes).
- SQLite keeps `ts` and `body` as TEXT (SQLite has no such types); `ts` holds UTC in one
  fixed form (`2026-11-23T01:30:00.000Z`) so text order is time order. An older SQLite
  store gets the desk/agent columns and the new indexes when opened.

Both back ends store `ts` converted to UTC (a naive `ts` is taken as UTC); `body` keeps
the event as received, except that NUL characters become U+FFFD and non-finite numbers
(`NaN`, `Infinity`, which are not JSON) become null, so one odd event never fails a batch.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from firmware.protocol.envelope import to_json
from headset_fleet.errors import FleetStoreError

log = logging.getLogger(__name__)

COLUMNS = "id, station, site, type, seq, ts, call, body, received_s, desk, agent"
N_COLUMNS = 11
IDENTITY_MAX_CHARS = 64  # desk and agent names, as the station validates them

_TABLE = """CREATE TABLE IF NOT EXISTS events (
        id TEXT PRIMARY KEY,
        station TEXT NOT NULL,
        site TEXT NOT NULL,
        type TEXT NOT NULL,
        seq BIGINT,
        ts {ts} NOT NULL,
        call TEXT,
        body {body} NOT NULL,
        received_s DOUBLE PRECISION NOT NULL,
        desk TEXT,
        agent TEXT
    )"""
INDEXES = (
    "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)",
    "CREATE INDEX IF NOT EXISTS events_station_ts ON events (station, ts)",
    "CREATE INDEX IF NOT EXISTS events_type_ts ON events (type, ts)",
    "CREATE INDEX IF NOT EXISTS events_site_ts ON events (site, ts)",
    "CREATE INDEX IF NOT EXISTS events_call ON events (call)",
)
STATIONS_TABLE = """CREATE TABLE IF NOT EXISTS stations (
        site TEXT NOT NULL,
        station TEXT NOT NULL,
        desk TEXT,
        agent TEXT,
        tz TEXT,
        seen_s DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (site, station)
    )"""
SQLITE_SCHEMA = (_TABLE.format(ts="TEXT", body="TEXT"), *INDEXES, STATIONS_TABLE)
POSTGRES_SCHEMA = (_TABLE.format(ts="TIMESTAMPTZ", body="JSONB"), *INDEXES, STATIONS_TABLE)
TZ_MAX_CHARS = 64  # IANA names are shorter; anything longer is not one
SQLITE_VERSION = 2  # PRAGMA user_version once _migrate has run
_UTC_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z"
SCHEMA_LOCK = 0x68735F6576  # pg_advisory_xact_lock key: one creation or migration at a time


def _clean(value):
    """The value with NUL characters replaced and non-finite floats as None (jsonb refuses both)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def parse_ts(text: str) -> datetime:
    """ISO 8601 -> aware UTC datetime (naive = UTC); ValueError if it is not one."""
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return ts.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"ts {text[:64]!r} is not an ISO 8601 time") from None


def utc_text(ts: datetime) -> str:
    """The SQLite `ts` column's form: UTC, milliseconds, 'Z' (text order = time order)."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _identity(event: dict, key: str) -> str | None:
    value = event.get(key)
    if isinstance(value, str) and value and len(value) <= IDENTITY_MAX_CHARS and value.isprintable():
        return value.replace("\x00", "\ufffd")
    return None


def station_row(site: str, station: str, birth: dict, seen_s: float) -> tuple | None:
    """The `stations` row of one `status` birth (site and station from the topic), or None if it
    is not an online birth. desk/agent/tz are kept only as printable text of sane length (the
    report checks the zone name itself)."""
    if not isinstance(birth, dict) or birth.get("status") != "online":
        return None
    tz = birth.get("tz")
    tz = tz if isinstance(tz, str) and 0 < len(tz) <= TZ_MAX_CHARS and tz.isprintable() else None
    return (site, station, _identity(birth, "desk"), _identity(birth, "agent"), tz, seen_s)


def event_row(site: str, event: dict, received_s: float) -> tuple:
    """The table row for one event; raises ValueError for anything either back end would refuse,
    so one malformed message is rejected alone instead of failing (and retrying) its whole batch.
    `ts` in the row is an aware UTC datetime; each back end stores it in its own type."""
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
        ts = parse_ts(event["ts"])
    except ValueError as exc:
        raise ValueError(f"event {event['id']!r}: {exc}") from None
    seq = event.get("seq")
    seq = seq if isinstance(seq, int) and not isinstance(seq, bool) and abs(seq) < 2**63 else None
    body = to_json(_clean(event))
    return (
        event["id"],
        event["station"],
        site,
        event["type"],
        seq,
        ts,
        call,
        body,
        received_s,
        _identity(event, "desk"),
        _identity(event, "agent"),
    )


class EventStore:
    """Common SQL for both back ends; subclasses provide the connection, schema and placeholder."""

    placeholder = "?"
    url = ""

    def __init__(self, conn):
        self.conn = conn
        self._prepare()

    def _prepare(self) -> None:
        raise NotImplementedError

    def _adapt(self, row: tuple) -> tuple:
        return row

    def insert_many(self, rows: list[tuple]) -> int:
        """Insert rows, skipping ids already stored, and commit; returns rows actually added."""
        if not rows:
            return 0
        marks = ", ".join([self.placeholder] * N_COLUMNS)
        sql = f"INSERT INTO events ({COLUMNS}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"
        try:
            self._reconnect_if_broken()
            cur = self.conn.cursor()
            cur.executemany(sql, [self._adapt(r) for r in rows])
            added = cur.rowcount
            self.conn.commit()
        except Exception as exc:
            self._rollback()
            raise FleetStoreError(f"{self.url}: cannot store events: {exc}".splitlines()[0]) from None
        return max(added, 0)

    def upsert_stations(self, rows: list[tuple]) -> None:
        """Record what stations said in their births (station_row), the newest winning; commits."""
        if not rows:
            return
        p = self.placeholder
        sql = (
            f"INSERT INTO stations (site, station, desk, agent, tz, seen_s) VALUES ({p}, {p}, {p}, {p}, {p}, {p}) "
            "ON CONFLICT (site, station) DO UPDATE SET desk = excluded.desk, agent = excluded.agent, "
            "tz = excluded.tz, seen_s = excluded.seen_s WHERE excluded.seen_s >= stations.seen_s"
        )
        try:
            self._reconnect_if_broken()
            cur = self.conn.cursor()
            cur.executemany(sql, rows)
            self.conn.commit()
        except Exception as exc:
            self._rollback()
            raise FleetStoreError(f"{self.url}: cannot record stations: {exc}".splitlines()[0]) from None

    def site_zones(self) -> dict[str, str]:
        """{site: the time zone its stations report}: the most common among the site's
        stations (ties: the first name in order); sites whose stations report none are absent."""
        try:
            self._reconnect_if_broken()
            cur = self.conn.cursor()
            cur.execute(
                "SELECT site, tz, COUNT(*) FROM stations WHERE tz IS NOT NULL GROUP BY site, tz ORDER BY site, tz"
            )
            rows = cur.fetchall()
            self.conn.commit()
        except Exception as exc:
            self._rollback()
            raise FleetStoreError(f"{self.url}: cannot read stations: {exc}".splitlines()[0]) from None
        best: dict[str, tuple[int, str]] = {}
        for site, tz, n in rows:
            if site not in best or n > best[site][0]:
                best[site] = (int(n), tz)
        return {site: tz for site, (_n, tz) in best.items()}

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

    def _ts_param(self, ts: datetime):
        return ts

    def _body(self, body) -> dict:
        return json.loads(body) if isinstance(body, (str, bytes)) else body

    def events_between(self, lo: datetime, hi: datetime, types: tuple = ()) -> list[dict]:
        """Every stored event with lo <= ts < hi (aware datetimes) and, if given, a type in `types`,
        in (station, seq, ts) order, each with `site` from the store and `desk`/`agent` from their
        (checked) columns, absent when NULL. A list: for a whole day, iter_events_between."""
        return list(self.iter_events_between(lo, hi, types))

    def iter_events_between(self, lo: datetime, hi: datetime, types: tuple = (), batch: int = 2000) -> Iterator[dict]:
        """events_between as a stream, `batch` rows at a time (PostgreSQL: a server-side
        cursor), so a day of millions of events is read in bounded memory. Read it to the end
        (or close it): the read transaction ends then."""
        p = self.placeholder
        only = f" AND type IN ({', '.join([p] * len(types))})" if types else ""
        sql = f"SELECT site, desk, agent, body FROM events WHERE ts >= {p} AND ts < {p}{only} ORDER BY station, seq, ts"
        try:
            self._reconnect_if_broken()
            cur = self._stream_cursor()
            cur.execute(sql, (self._ts_param(lo), self._ts_param(hi), *types))
        except Exception as exc:
            self._rollback()
            raise FleetStoreError(f"{self.url}: cannot read events: {exc}".splitlines()[0]) from None
        try:
            while True:
                try:
                    rows = cur.fetchmany(batch)
                except Exception as exc:
                    raise FleetStoreError(f"{self.url}: cannot read events: {exc}".splitlines()[0]) from None
                if not rows:
                    break
                for site, desk, agent, body in rows:
                    event = self._body(body)
                    event["site"] = site
                    for key, value in (("desk", desk), ("agent", agent)):  # the checked columns, not the body's
                        if value:
                            event[key] = value
                        else:
                            event.pop(key, None)
                    yield event
        finally:
            try:
                cur.close()
            except Exception:
                pass
            self._rollback()  # end the read transaction (PostgreSQL), so it holds no lock

    def _stream_cursor(self):
        return self.conn.cursor()

    def events_for_day(self, day: date) -> list[dict]:
        """Every stored event whose `ts` falls on the UTC day `day` (see events_between)."""
        lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return self.events_between(lo, lo + timedelta(days=1))

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

    def _prepare(self) -> None:
        cur = self.conn.cursor()
        cur.execute(SQLITE_SCHEMA[0])
        if cur.execute("PRAGMA user_version").fetchone()[0] < SQLITE_VERSION:
            self._migrate(cur)
        for stmt in SQLITE_SCHEMA[1:]:
            cur.execute(stmt)
        self.conn.commit()

    def _migrate(self, cur) -> None:
        """A store made by an older version: add desk/agent, rewrite any `ts` not in the
        fixed UTC form (older versions stored it as received), once."""
        have = {row[1] for row in cur.execute("PRAGMA table_info(events)")}
        for col in ("desk", "agent"):
            if col not in have:
                cur.execute(f"ALTER TABLE events ADD COLUMN {col} TEXT")
        odd = cur.execute(f"SELECT id, ts FROM events WHERE ts NOT GLOB '{_UTC_GLOB}'").fetchall()
        fixed = []
        for event_id, text in odd:
            try:
                fixed.append((utc_text(parse_ts(text)), event_id))
            except ValueError:
                log.warning("%s: event %s keeps its unreadable ts %r", self.url, event_id, text)
        cur.executemany("UPDATE events SET ts = ? WHERE id = ?", fixed)
        cur.execute(f"PRAGMA user_version = {SQLITE_VERSION}")

    def _adapt(self, row: tuple) -> tuple:
        return (*row[:5], utc_text(row[5]), *row[6:])

    def _ts_param(self, ts: datetime):
        return utc_text(ts)


class PostgresStore(EventStore):
    placeholder = "%s"

    def __init__(self, url: str):
        self.url = url.split("@")[-1]  # never echo a password
        try:
            import psycopg
        except ImportError:
            raise FleetStoreError("PostgreSQL needs psycopg: pip install 'headset-fleet[postgres]'") from None
        self._dsn = url
        try:
            conn = psycopg.connect(url, connect_timeout=10)
        except psycopg.Error as exc:
            raise FleetStoreError(f"{self.url}: cannot open: {str(exc).strip().splitlines()[0]}") from None
        try:
            super().__init__(conn)
        except psycopg.Error as exc:
            conn.close()
            raise FleetStoreError(
                f"{self.url}: cannot create or migrate the events table: {str(exc).strip().splitlines()[0]}"
            ) from None

    def _column_types(self, cur) -> dict:
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'events'"
        )
        return dict(cur.fetchall())

    def _prepare(self) -> None:
        cur = self.conn.cursor()
        # One process at a time creates or migrates (two collectors starting together would
        # otherwise race on CREATE TABLE IF NOT EXISTS); released at commit.
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        if self._column_types(cur):
            self.migrate(cur)
            cur.execute(STATIONS_TABLE)  # a store made before the stations table
        else:
            for stmt in POSTGRES_SCHEMA:
                cur.execute(stmt)
        self.conn.commit()

    def migrate(self, cur) -> list[str]:
        """Bring an events table made by an older version to the typed schema (idempotent);
        returns what it changed. Runs in the caller's transaction under an advisory lock, so
        two collectors starting at once migrate once; a failure changes nothing."""
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        types = self._column_types(cur)
        changes = []
        if types.get("ts") != "timestamp with time zone":
            # Text written by older versions is ISO 8601; a time without an offset is UTC.
            cur.execute("SET LOCAL TIME ZONE 'UTC'")
            changes.append("ts TYPE timestamptz USING ts::timestamptz")
        if types.get("body") != "jsonb":
            # jsonb refuses \u0000 escapes, which text could hold: they become U+FFFD.
            changes.append("body TYPE jsonb USING replace(body::text, '\\u0000', '\\ufffd')::jsonb")
        alters = [f"ALTER COLUMN {c}" for c in changes]
        alters += [f"ADD COLUMN {col} TEXT" for col in ("desk", "agent") if col not in types]
        if alters:
            cur.execute("SELECT count(*) FROM events")
            rows = cur.fetchone()[0]
            log.warning("%s: migrating the events table (%d rows): %s", self.url, rows, "; ".join(alters))
            cur.execute("ALTER TABLE events " + ", ".join(alters))
        for stmt in INDEXES:
            cur.execute(stmt)
        return alters

    def _stream_cursor(self):
        return self.conn.cursor(name=f"hs_events_{id(self):x}")  # server-side: rows come in batches

    def _reconnect_if_broken(self) -> None:
        if self.conn.closed or self.conn.broken:
            import psycopg

            self.conn = psycopg.connect(self._dsn, connect_timeout=10)


def open_store(url: str, create: bool = True) -> EventStore:
    """Open the store named by `url`, creating or migrating its table; create=False refuses to
    make a new SQLite file (a report on a mistyped path should fail, not print an empty day)."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///") :], create)
    if "://" in url:
        raise FleetStoreError(f"{url}: unknown database URL (use sqlite:///PATH or postgresql://...)")
    return SqliteStore(url, create)
