"""Reports on a small known event set: the numbers, the CSV, the PNGs, the CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import date, datetime, timezone

import pytest

from firmware.protocol.envelope import EventFactory
from headset_fleet.report import summarize
from headset_fleet.store import event_row, open_store

DAY = date(2026, 11, 23)
EPOCH = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc).timestamp()


def known_events() -> list[tuple[str, dict]]:
    """st-1 (site sh): 2 calls (2 and 5 rings), holds of 30 s and 75 s, one dead air of 7 s,
    2 overtalks, violations answer-rings + hold-limit at 09:xx; st-2 (sh): 1 call, 1 ring;
    st-3 (bj): 1 call, 4 rings, a hold of 61 s, greet-in-time violation at 14:xx; and an event
    on the next day that the report must ignore."""
    out = []
    a = EventFactory("st-1", EPOCH)
    out += [("sh", a.make("call.start", 0, "c1", rings=2)),
            ("sh", a.make("hold.start", 10, "c1", after_s=0.0)),
            ("sh", a.make("hold.end", 40, "c1", duration_s=30.0)),
            ("sh", a.make("overtalk", 50, "c1", duration_s=0.8)),
            ("sh", a.make("call.end", 60, "c1", duration_s=60.0)),
            ("sh", a.make("call.start", 100, "c2", rings=5)),
            ("sh", a.make("rule.violation", 100, "c2", rule="answer-rings", detail="5 rings")),
            ("sh", a.make("hold.start", 110, "c2", after_s=0.0)),
            ("sh", a.make("rule.violation", 170, "c2", rule="hold-limit", detail="60 s")),
            ("sh", a.make("hold.end", 185, "c2", duration_s=75.0)),
            ("sh", a.make("dead_air", 200, "c2", duration_s=7.0)),
            ("sh", a.make("overtalk", 210, "c2", duration_s=0.6)),
            ("sh", a.make("call.end", 220, "c2", duration_s=120.0))]
    b = EventFactory("st-2", EPOCH)
    out += [("sh", b.make("call.start", 5, "d1", rings=1)), ("sh", b.make("call.end", 65, "d1", duration_s=60.0))]
    c = EventFactory("st-3", EPOCH + 5 * 3600)
    out += [("bj", c.make("call.start", 0, "e1", rings=4)),
            ("bj", c.make("rule.violation", 2.5, "e1", rule="greet-in-time", detail="no greeting")),
            ("bj", c.make("hold.start", 10, "e1", after_s=0.0)),
            ("bj", c.make("hold.end", 71, "e1", duration_s=61.0)),
            ("bj", c.make("call.end", 100, "e1", duration_s=100.0))]
    nxt = EventFactory("st-1", EPOCH + 86400)
    out.append(("sh", nxt.make("call.start", 0, "x", rings=9)))
    return out


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with open_store(url) as store:
        store.insert_many([event_row(site, e, 0.0) for site, e in known_events()])
    return url


def test_numbers(db):
    with open_store(db) as store:
        report = summarize(store.events_for_day(DAY), DAY)
    rows = {(r["site"], r["station"]): r for r in report.rows()}
    st1 = rows[("sh", "st-1")]
    assert (st1["calls"], st1["rings_mean"], st1["rings_max"], st1["late_answers"]) == (2, 3.5, 5, 1)
    assert (st1["holds"], st1["hold_total_s"], st1["hold_max_s"], st1["holds_over_limit"]) == (2, 105.0, 75.0, 1)
    assert (st1["dead_air"], st1["dead_air_s"], st1["overtalk"]) == (1, 7.0, 2)
    assert (st1["violations"], st1["v:answer-rings"], st1["v:hold-limit"], st1["v:greet-in-time"]) == (2, 1, 1, 0)
    sh = rows[("sh", "")]
    assert (sh["calls"], sh["holds"], sh["late_answers"], sh["violations"]) == (3, 2, 1, 2)
    bj = rows[("bj", "")]
    assert (bj["calls"], bj["holds_over_limit"], bj["v:greet-in-time"]) == (1, 1, 1)
    assert report.violations_by_hour["answer-rings"][9] == 1
    assert report.violations_by_hour["greet-in-time"][14] == 1
    assert sorted(report.hold_durations_s) == [30.0, 61.0, 75.0]


def test_cli_writes_csv_and_pngs(db, tmp_path):
    out_csv, png = tmp_path / "r" / "day.csv", tmp_path / "png"
    proc = subprocess.run([sys.executable, "-m", "headset_fleet.cli", "report", "--db", db, "--day", DAY.isoformat(),
                           "--csv", str(out_csv), "--png", str(png)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "st-1" in proc.stdout and "st-3" in proc.stdout
    rows = list(csv.DictReader(out_csv.open()))
    assert [(r["scope"], r["site"], r["station"]) for r in rows] == [
        ("station", "bj", "st-3"), ("station", "sh", "st-1"), ("station", "sh", "st-2"),
        ("site", "bj", ""), ("site", "sh", "")]
    assert rows[1]["holds_over_limit"] == "1" and rows[1]["v:hold-limit"] == "1" and rows[1]["day"] == "2026-11-23"
    assert rows[4]["calls"] == "3"
    for name in ("hold-durations.png", "violations-by-hour.png"):
        data = (png / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_bad_day_and_empty_day(db):
    proc = subprocess.run([sys.executable, "-m", "headset_fleet.cli", "report", "--db", db, "--day", "23/11/2026"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "YYYY-MM-DD" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "headset_fleet.cli", "report", "--db", db, "--day", "2026-01-01"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "no events" in proc.stdout
    missing = db.replace("events.db", "nope/events.db")
    proc = subprocess.run([sys.executable, "-m", "headset_fleet.cli", "report", "--db", missing, "--day", "2026-11-23"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "no such database file" in proc.stderr and proc.stderr.count("\n") == 1


def test_report_from_postgres(fleet_pg_url):
    with open_store(fleet_pg_url) as store:
        rows = [event_row(site, e, 0.0) for site, e in known_events()]
        store.insert_many(rows)
        assert store.insert_many(rows) == 0  # all duplicates
        report = summarize(store.events_for_day(DAY), DAY)
    assert sum(f.calls for f in report.sites) == 4
