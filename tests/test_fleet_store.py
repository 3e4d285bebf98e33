"""The event store's schema: typed PostgreSQL (timestamptz, jsonb, indexes), the migration of
stores made by older versions (PostgreSQL and SQLite), desk/agent columns, odd events that
PostgreSQL would refuse, and the Grafana dashboard's SQL run against a real PostgreSQL."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from headset_fleet.store import event_row, open_store

DAY = date(2026, 11, 23)
DASHBOARD = Path(__file__).resolve().parents[1] / "config" / "grafana" / "headset-stations.json"
OLD_SCHEMA = """CREATE TABLE events (
        id TEXT PRIMARY KEY, station TEXT NOT NULL, site TEXT NOT NULL, type TEXT NOT NULL,
        seq BIGINT, ts TEXT NOT NULL, call TEXT, body TEXT NOT NULL, received_s DOUBLE PRECISION NOT NULL)"""
# The forms older versions accepted and stored as received (they checked with fromisoformat).
OLD_TS = ["2026-11-23T01:30:00.000Z", "2026-11-23T09:30:00+08:00", "2026-11-23T01:30:00", "2026-11-23 01:30:00.250"]


def _old_rows() -> list[tuple]:
    rows = []
    for i, ts in enumerate(OLD_TS):
        body = json.dumps(
            {
                "id": f"old{i}",
                "type": "dead_air",
                "ts": ts,
                "station": "st-1",
                "seq": i,
                "call": "c1",
                "duration_s": 6.5,
                "detail": "nul \u0000 here",
            },
            ensure_ascii=False,
        )
        rows.append((f"old{i}", "st-1", "sh", "dead_air", i, ts, "c1", body, 0.0))
    return rows


def _event(i: int, type_: str, ts: datetime, **fields) -> dict:
    return {
        "id": f"ev{i}",
        "type": type_,
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "station": f"st-{i % 3}",
        "seq": i,
        "call": f"c{i // 4}",
        "t": float(i),
        **fields,
    }


def sample_events() -> list[tuple[str, dict]]:
    t0 = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)
    out = []
    for i in range(24):
        ts = t0 + timedelta(minutes=7 * i)
        site = "sh" if i % 2 else "bj"
        kind = ("call.start", "hold.end", "dead_air", "overtalk", "rule.violation", "call.end")[i % 6]
        fields = (
            {"rings": 2}
            if kind == "call.start"
            else {"rule": "hold-limit", "detail": "x"}
            if kind == "rule.violation"
            else {"duration_s": 30.0 + i * 3}
        )
        out.append((site, _event(i, kind, ts, desk=f"D-{i % 3}", **fields)))
    out.append(("sh", _event(99, "hold.end", t0, duration_s="junk")))  # a non-number must not break a panel
    return out


@pytest.mark.integration
def test_postgres_schema_is_typed_and_indexed(fleet_pg_url):
    import psycopg

    with open_store(fleet_pg_url) as store:
        store.insert_many([event_row(site, e, 1.0) for site, e in sample_events()])
    with psycopg.connect(fleet_pg_url) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'events'"
            ).fetchall()
        )
        assert types["ts"] == "timestamp with time zone" and types["body"] == "jsonb"
        assert types["desk"] == types["agent"] == "text"
        indexes = {
            name: sql
            for name, sql in conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events'"
            ).fetchall()
        }
        assert "(station, ts)" in indexes["events_station_ts"] and "(type, ts)" in indexes["events_type_ts"]
        assert "(call)" in indexes["events_call"]
        # Standard SQL without casts: jsonb operators and time arithmetic.
        n, longest = conn.execute(
            "SELECT count(*), max((body->>'duration_s')::float8) FROM events "
            "WHERE type = 'hold.end' AND jsonb_typeof(body->'duration_s') = 'number' "
            "AND ts >= '2026-11-23T09:00:00+08:00'"
        ).fetchone()
        assert n == 4 and longest == 30.0 + 19 * 3
        assert conn.execute("SELECT desk FROM events WHERE id = 'ev5'").fetchone() == ("D-2",)


@pytest.mark.integration
def test_postgres_store_made_by_an_older_version_is_migrated(fleet_pg_url):
    import psycopg

    with psycopg.connect(fleet_pg_url, autocommit=True) as conn:
        conn.execute(OLD_SCHEMA)
        conn.execute("CREATE INDEX events_ts ON events (ts)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO events VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", _old_rows())
    with open_store(fleet_pg_url) as store:  # migrates
        events = store.events_between(
            datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc), datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
        )
        assert sorted(e["id"] for e in events) == ["old0", "old1", "old2", "old3"]  # every old form is 01:30 UTC
        assert all(e["duration_s"] == 6.5 and e["detail"] == "nul \ufffd here" for e in events)
        assert store.insert_many([event_row("sh", e, 1.0) for _, e in sample_events()]) == 25
        assert store.count() == 29
    with psycopg.connect(fleet_pg_url) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'events'"
            ).fetchall()
        )
        assert (types["ts"], types["body"], types["desk"]) == ("timestamp with time zone", "jsonb", "text")
        stamps = [r[0] for r in conn.execute("SELECT ts FROM events WHERE id LIKE 'old%' ORDER BY id")]
        assert stamps[:3] == [datetime(2026, 11, 23, 1, 30, tzinfo=timezone.utc)] * 3
        assert stamps[3] == datetime(2026, 11, 23, 1, 30, 0, 250000, tzinfo=timezone.utc)
    with open_store(fleet_pg_url) as store:  # a second open changes nothing
        assert store.count() == 29


@pytest.mark.integration
def test_postgres_takes_events_it_would_refuse_as_is(fleet_pg_url):
    """NaN (not JSON) and NUL (not in jsonb) in a body: stored (cleaned), not a failing batch."""
    odd = {
        "id": "odd1",
        "type": "dead_air",
        "ts": "2026-11-23T01:30:00Z",
        "station": "st-1",
        "seq": 1,
        "call": None,
        "duration_s": float("nan"),
        "detail": "a\x00b",
        "agent": "x" * 65,
    }
    with open_store(fleet_pg_url) as store:
        assert store.insert_many([event_row("sh", odd, 0.0)]) == 1
        (event,) = store.events_for_day(DAY)
    assert event["duration_s"] is None and event["detail"] == "a\ufffdb" and "agent" not in event


def test_sqlite_store_made_by_an_older_version_is_migrated(tmp_path):
    path = tmp_path / "events.db"
    conn = sqlite3.connect(path)
    conn.execute(OLD_SCHEMA)
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", _old_rows())
    conn.commit()
    conn.close()
    with open_store(f"sqlite:///{path}", create=False) as store:
        events = store.events_between(
            datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc), datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
        )
        assert sorted(e["id"] for e in events) == ["old0", "old1", "old2", "old3"]
        store.insert_many([event_row("sh", {**e, "agent": "ann"}, 1.0) for _, e in sample_events()[:2]])
        (first,) = [e for e in store.events_for_day(DAY) if e["id"] == "ev0"]
        assert first["agent"] == "ann" and first["desk"] == "D-0"
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT ts FROM events WHERE id = 'old1'").fetchone() == ("2026-11-23T01:30:00.000Z",)
    assert conn.execute("SELECT body FROM events WHERE id = 'old1'").fetchone()[0].count("+08:00") == 1  # body as sent
    conn.close()


def test_grafana_dashboard_is_well_formed():
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dash["title"] and dash["uid"] and isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) >= 5
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for word in ("hold", "violations per rule", "dead air", "overtalk", "calls per site"):
        assert word in titles
    for p in dash["panels"]:
        assert p["targets"] and all(
            t["rawSql"].strip() and t["format"] in ("time_series", "table") for t in p["targets"]
        )
        assert set(p["gridPos"]) == {"h", "w", "x", "y"}


def grafana_sql(sql: str, lo: datetime, hi: datetime, sites: list[str]) -> str:
    """The SQL Grafana's PostgreSQL data source sends for `sql`: its macros expanded as it does."""

    def group(m):
        col, interval = m.group(1).strip(), m.group(2).strip().strip("'")
        seconds = int(interval[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[interval[-1]]
        return f'floor(extract(epoch from {col})/{seconds})*{seconds} AS "time"'

    sql = re.sub(r"\$__timeGroupAlias\(([^,]+),([^)]+)\)", group, sql)
    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m.group(1)} BETWEEN '{lo.isoformat()}' AND '{hi.isoformat()}'", sql
    )
    sql = sql.replace("$site", ", ".join(f"'{s}'" for s in sites))
    assert "$" not in sql, sql
    return sql


@pytest.mark.integration
def test_every_grafana_panel_query_runs(fleet_pg_url):
    import psycopg

    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    with open_store(fleet_pg_url) as store:
        store.insert_many([event_row(site, e, 1.0) for site, e in sample_events()])
    lo, hi = datetime(2026, 11, 23, tzinfo=timezone.utc), datetime(2026, 11, 24, tzinfo=timezone.utc)
    with psycopg.connect(fleet_pg_url) as conn:
        variable = dash["templating"]["list"][0]
        sites = [r[0] for r in conn.execute(variable["query"]).fetchall()]
        assert sites == ["bj", "sh"]
        for panel in dash["panels"]:
            for target in panel["targets"]:
                cur = conn.execute(grafana_sql(target["rawSql"], lo, hi, sites))
                rows = cur.fetchall()
                columns = [d.name for d in cur.description]
                assert rows, f"{panel['title']}: no rows"
                if target["format"] == "time_series":
                    assert columns[0] == "time", panel["title"]
        calls = next(p for p in dash["panels"] if p["title"].startswith("Calls per site"))["targets"][0]["rawSql"]
        rows = conn.execute(grafana_sql(calls, lo, hi, sites)).fetchall()
        assert sum(r[2] for r in rows) == 4 and {r[1] for r in rows} == {"bj"}  # call.start at i = 0, 6, 12, 18
        assert conn.execute(grafana_sql(calls, lo, hi, ["sh"])).fetchall() == []  # the site variable filters


@pytest.mark.integration
def test_two_collectors_opening_an_old_store_at_once_migrate_it_once(fleet_pg_url):
    import threading

    import psycopg

    with psycopg.connect(fleet_pg_url, autocommit=True) as conn:
        conn.execute(OLD_SCHEMA)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO events VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", _old_rows())
    results: list = []

    def open_one():
        try:
            with open_store(fleet_pg_url) as store:
                results.append(store.count())
        except Exception as exc:  # the test reports it below
            results.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [4, 4, 4]


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_stations_table_keeps_the_newest_birth_and_gives_each_site_its_zone(backend, tmp_path, request):
    """Births recorded by the collector (store.station_row/upsert_stations): the newest wins, an
    older one arriving late does not; a site's zone is the one most of its stations report.
    A store made before the stations table gets it when opened."""
    from headset_fleet.store import station_row

    if backend == "postgres":
        import psycopg

        url = request.getfixturevalue("fleet_pg_url")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(OLD_SCHEMA)  # an older store: no stations table yet
    else:
        url = f"sqlite:///{tmp_path / 'events.db'}"
        with sqlite3.connect(tmp_path / "events.db") as conn:
            conn.execute(OLD_SCHEMA)
    with open_store(url) as store:
        rows = [
            station_row("sh", "st-1", {"status": "online", "tz": "Asia/Shanghai", "desk": "A-01"}, 10.0),
            station_row("sh", "st-2", {"status": "online", "tz": "Asia/Shanghai"}, 10.0),
            station_row("sh", "st-3", {"status": "online", "tz": "Asia/Tokyo"}, 10.0),
            station_row("bj", "st-4", {"status": "online"}, 10.0),  # no zone reported
        ]
        assert station_row("sh", "st-1", {"status": "offline", "tz": "UTC"}, 11.0) is None  # a will is no birth
        assert station_row("sh", "st-1", {"status": "online", "tz": "x" * 65}, 11.0)[4] is None
        store.upsert_stations(rows)
        store.upsert_stations([station_row("sh", "st-3", {"status": "online", "tz": "Asia/Shanghai"}, 12.0)])
        store.upsert_stations([station_row("sh", "st-3", {"status": "online", "tz": "Europe/Paris"}, 11.0)])  # late
        store.upsert_stations([station_row("sh", "st-1", {"status": "online", "tz": "Asia/Shanghai"}, 12.0)])
        assert store.site_zones() == {"sh": "Asia/Shanghai"}
        cur = store.conn.cursor()
        cur.execute("SELECT station, desk, tz, seen_s FROM stations ORDER BY station")
        assert [tuple(r) for r in cur.fetchall()] == [
            ("st-1", None, "Asia/Shanghai", 12.0),  # the newest birth names no desk: none
            ("st-2", None, "Asia/Shanghai", 10.0),
            ("st-3", None, "Asia/Shanghai", 12.0),
            ("st-4", None, None, 10.0),
        ]
        store.conn.commit()
