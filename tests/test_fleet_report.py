"""Reports on a small known event set: the numbers, local time zones, rates, "no data", the CSV,
the PNGs, the HTML page, the CLI; from SQLite and from a real PostgreSQL."""

from __future__ import annotations

import csv
import subprocess
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from firmware.protocol.envelope import EventFactory
from headset_fleet.report import load_report, render_report_html, summarize
from headset_fleet.store import event_row, open_store
from fixtures_fleet import FLEET

DAY = date(2026, 11, 23)
EPOCH = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc).timestamp()
UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
CLI = [*FLEET, "report"]


def known_events() -> list[tuple[str, dict]]:
    """st-1 (site sh): 2 calls (2 and 5 rings), holds of 30 s and 75 s, one dead air of 7 s,
    2 overtalks, violations answer-rings + hold-limit at 09:xx; st-2 (sh): 1 call, 1 ring;
    st-3 (bj): 1 call, 4 rings, a hold of 61 s, greet-in-time violation at 14:xx; and an event
    on the next day that the report must ignore."""
    out = []
    a = EventFactory("st-1", EPOCH)
    out += [
        ("sh", a.make("call.start", 0, "c1", rings=2)),
        ("sh", a.make("hold.start", 10, "c1", after_s=0.0)),
        ("sh", a.make("hold.end", 40, "c1", duration_s=30.0)),
        ("sh", a.make("overtalk", 50, "c1", duration_s=0.8)),
        ("sh", a.make("call.end", 60, "c1", duration_s=60.0, hold_s=30.0)),
        ("sh", a.make("call.start", 100, "c2", rings=5)),
        ("sh", a.make("rule.violation", 100, "c2", rule="answer-rings", detail="5 rings")),
        ("sh", a.make("hold.start", 110, "c2", after_s=0.0)),
        ("sh", a.make("rule.violation", 170, "c2", rule="hold-limit", detail="60 s")),
        ("sh", a.make("hold.end", 185, "c2", duration_s=75.0)),
        ("sh", a.make("dead_air", 200, "c2", duration_s=7.0)),
        ("sh", a.make("overtalk", 210, "c2", duration_s=0.6)),
        ("sh", a.make("call.end", 220, "c2", duration_s=120.0, hold_s=75.0)),
    ]
    b = EventFactory("st-2", EPOCH)
    out += [
        ("sh", b.make("call.start", 5, "d1", rings=1)),
        ("sh", b.make("script.step", 12, "d1", script="silent-call", step=1, prompt="", final=False)),
        ("sh", b.make("script.step", 17, "d1", script="silent-call", step=2, prompt="", final=True)),
        ("sh", b.make("call.end", 65, "d1", duration_s=60.0, hold_s=0.0)),
    ]
    c = EventFactory("st-3", EPOCH + 5 * 3600)
    out += [
        ("bj", c.make("call.start", 0, "e1", rings=4)),
        ("bj", c.make("rule.violation", 2.5, "e1", rule="greet-in-time", detail="no greeting")),
        ("bj", c.make("hold.start", 10, "e1", after_s=0.0)),
        ("bj", c.make("hold.end", 71, "e1", duration_s=61.0)),
        ("bj", c.make("call.end", 100, "e1", duration_s=100.0, hold_s=61.0)),
    ]
    nxt = EventFactory("st-1", EPOCH + 86400)
    out.append(("sh", nxt.make("call.start", 0, "x", rings=9)))
    return out


def shanghai_events() -> list[tuple[str, dict]]:
    """Site sh in Asia/Shanghai, desk A-01 with agent ann: a call at 01:30 UTC (09:30 local) with
    dead air and overtalk, a call at 17:00 UTC the day before (01:00 local on DAY), and one at
    16:30 UTC on DAY (00:30 local the next day, not on DAY)."""
    f = EventFactory("st-9", datetime(2026, 11, 23, 1, 30, tzinfo=UTC).timestamp())
    who = {"desk": "A-01", "agent": "ann"}
    out = [
        ("sh", f.make("call.start", 0, "k1", rings=1, **who)),
        ("sh", f.make("dead_air", 40, "k1", duration_s=6.0, **who)),
        ("sh", f.make("overtalk", 50, "k1", duration_s=0.7, **who)),
        ("sh", f.make("call.end", 90, "k1", duration_s=90.0, hold_s=0.0, **who)),
    ]
    early = EventFactory("st-9", datetime(2026, 11, 22, 17, 0, tzinfo=UTC).timestamp())
    out += [("sh", early.make("call.start", 0, "k0", rings=2, desk="A-01"))]
    late = EventFactory("st-9", datetime(2026, 11, 23, 16, 30, tzinfo=UTC).timestamp())
    out += [("sh", late.make("call.start", 0, "k2", rings=1, desk="A-01"))]
    return out


def _store(url: str, events) -> str:
    with open_store(url) as store:
        store.insert_many([event_row(site, e, 0.0) for site, e in events])
    return url


@pytest.fixture
def db(tmp_path):
    return _store(f"sqlite:///{tmp_path / 'events.db'}", known_events())


def test_numbers(db):
    with open_store(db) as store:
        report = summarize(store.events_for_day(DAY), DAY, tz=UTC)
    rows = {(r["scope"], r["site"], r["station"]): r for r in report.rows()}
    st1 = rows[("desk", "sh", "st-1")]
    assert (st1["calls"], st1["rings_mean"], st1["rings_max"], st1["late_answers"]) == (2, 3.5, 5, 1)
    assert (st1["holds"], st1["hold_total_s"], st1["hold_max_s"], st1["holds_over_limit"]) == (2, 105.0, 75.0, 1)
    assert (st1["dead_air"], st1["dead_air_s"], st1["overtalk"]) == (1, 7.0, 2)
    assert (st1["violations"], st1["v:answer-rings"], st1["v:hold-limit"], st1["v:greet-in-time"]) == (2, 1, 1, 0)
    assert (st1["talk_s"], st1["aht_s"]) == (75.0, 90.0)  # (60-30 + 120-75), (60+120)/2
    assert (st1["overtalk_per_100"], st1["late_answers_per_100"], st1["violations_per_100"]) == (100.0, 50.0, 100.0)
    sh = rows[("site", "sh", "")]
    assert (sh["calls"], sh["holds"], sh["late_answers"], sh["violations"], sh["silent_calls"]) == (3, 2, 1, 2, 1)
    assert sh["silent_calls_per_100"] == 33.3 and sh["aht_s"] == 80.0
    bj = rows[("site", "bj", "")]
    assert (bj["calls"], bj["holds_over_limit"], bj["v:greet-in-time"]) == (1, 1, 1)
    by_site = {s.site: s for s in report.sites}
    assert by_site["sh"].violations_by_hour["answer-rings"][9] == 1
    assert by_site["bj"].violations_by_hour["greet-in-time"][14] == 1
    assert by_site["sh"].dead_air_by_hour[9] == 1 and by_site["sh"].overtalk_by_hour[9] == 2
    assert sorted(by_site["sh"].total.hold_durations_s) == [30.0, 75.0]


def test_shanghai_site_reports_its_local_day_and_hours(tmp_path):
    """01:30 UTC is 09:30 in Shanghai: the call lands in the 09:00 hour; the local day runs from
    16:00 UTC the day before, so a call at 17:00 UTC on the 22nd counts and one at 16:30 UTC on
    the 23rd does not."""
    url = _store(f"sqlite:///{tmp_path / 'events.db'}", shanghai_events())
    report = load_report(url, DAY, tz="Asia/Shanghai")
    (site,) = report.sites
    assert site.calls_by_hour[9] == 1 and site.calls_by_hour[1] == 1 and sum(site.calls_by_hour) == 2
    assert site.dead_air_by_hour[9] == 1 and site.overtalk_by_hour[9] == 1
    rows = {(r["scope"], r["desk"], r["agent"]): r for r in report.rows()}
    assert rows[("desk", "A-01", "")]["calls"] == 2
    assert rows[("agent", "", "ann")]["calls"] == 1 and rows[("agent", "", "ann")]["dead_air_s"] == 6.0
    utc = load_report(url, DAY, tz="UTC")  # the same store read as UTC days: the 01:30 call is hour 1
    assert utc.sites[0].calls_by_hour[1] == 1 and utc.sites[0].calls_by_hour[16] == 1


def test_site_zone_comes_from_the_inventory(tmp_path):
    url = _store(f"sqlite:///{tmp_path / 'events.db'}", shanghai_events())
    inventory = tmp_path / "fleet.csv"
    inventory.write_text(
        "station_id,site,desk,profile,tz\nst-9,sh,A-01,hotline-5s,Asia/Shanghai\nst-10,bj,B-01,hotline-5s,\n"
    )
    report = load_report(url, DAY, inventory=inventory)
    by_site = {s.site: s for s in report.sites}
    assert by_site["sh"].tz == SHANGHAI and by_site["sh"].calls_by_hour[9] == 1
    assert not by_site["bj"].has_data  # in the inventory, no events: listed as no data
    page = render_report_html(report, charts=False)
    assert "Asia/Shanghai" in page and "no data" in page


def test_empty_day_says_no_data(db, tmp_path):
    proc = subprocess.run(
        [*CLI, "--db", db, "--day", "2026-01-01", "--tz", "Asia/Shanghai", "--html", str(tmp_path / "r.html")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "no data" in proc.stdout
    page = (tmp_path / "r.html").read_text()
    assert 'id="no-data"' in page and "<table" not in page


def test_cli_writes_csv_pngs_and_html(db, tmp_path):
    out_csv, png, page = tmp_path / "r" / "day.csv", tmp_path / "png", tmp_path / "r" / "day.html"
    proc = subprocess.run(
        [
            *CLI,
            "--db",
            db,
            "--day",
            DAY.isoformat(),
            "--tz",
            "UTC",
            "--csv",
            str(out_csv),
            "--png",
            str(png),
            "--html",
            str(page),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "st-1" in proc.stdout and "st-3" in proc.stdout and "UTC" in proc.stdout
    rows = list(csv.DictReader(out_csv.open()))
    assert [(r["scope"], r["site"], r["station"]) for r in rows] == [
        ("desk", "bj", "st-3"),
        ("site", "bj", ""),
        ("desk", "sh", "st-1"),
        ("desk", "sh", "st-2"),
        ("site", "sh", ""),
    ]
    assert rows[2]["holds_over_limit"] == "1" and rows[2]["v:hold-limit"] == "1" and rows[2]["day"] == "2026-11-23"
    assert rows[4]["calls"] == "3" and rows[4]["overtalk_per_100"] == "66.7" and rows[4]["tz"] == "UTC"
    for name in ("sh.png", "bj.png"):
        data = (png / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 2 and "st-2" in text and "(66.7)" in text


def test_bad_arguments_are_one_line(db):
    cases = [
        (["--day", "23/11/2026"], 2, "YYYY-MM-DD"),
        (["--day", "2026-11-23", "--tz", "Mars/Base"], 2, "Mars/Base"),
        (["--day", "2026-11-23", "--hold-limit-s", "nan"], 2, "--hold-limit-s"),
    ]
    for args, code, word in cases:
        proc = subprocess.run([*CLI, "--db", db, *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == code and proc.stderr.count("\n") == 1 and word in proc.stderr, proc.stderr
    missing = db.replace("events.db", "nope/events.db")
    proc = subprocess.run([*CLI, "--db", missing, "--day", "2026-11-23"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "no such database file" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.integration
def test_report_from_postgres_in_local_time(fleet_pg_url):
    rows = [event_row(site, e, 0.0) for site, e in known_events() + shanghai_events()]
    with open_store(fleet_pg_url) as store:
        assert store.insert_many(rows) == len(rows)
        assert store.insert_many(rows) == 0  # all duplicates
    report = load_report(fleet_pg_url, DAY, tz="Asia/Shanghai")
    sh = next(s for s in report.sites if s.site == "sh")
    assert sh.calls_by_hour[9] == 1 and sh.calls_by_hour[17] == 3  # 01:30 UTC and 09:00 UTC in local hours
    assert sum(s.total.calls for s in report.sites) == 6
