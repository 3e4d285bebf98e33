"""Load generator end to end (real broker, real collector), the call script, and the CLI hook."""

from __future__ import annotations

import argparse
import itertools
import random
import subprocess
import sys
import time

import pytest
from fixtures_fleet import FLEET
from fixtures_mqtt import wait_until

from headset_fleet.collector import Collector
from headset_fleet.connect import parse_broker_url
from headset_fleet.loadgen import call_script, run_loadgen
from headset_fleet.store import open_store


def test_call_script_is_a_plausible_call():
    events = list(itertools.islice(call_script(random.Random(1)), 400))
    kinds = [k for _, k, _ in events]
    assert (
        kinds.count("call.start") == kinds.count("call.end") or kinds.count("call.start") == kinds.count("call.end") + 1
    )
    assert {"ring", "hook", "cue", "line", "call.end"} <= set(kinds)
    for call, kind, fields in events:
        if kind == "hold.end":
            assert fields["duration_s"] > 0 and call
        if kind == "rule.violation":
            assert fields["rule"] in ("answer-rings", "hold-limit")


@pytest.mark.parametrize("mode, stations, per_process", [("direct", 40, 15), ("reporter", 6, 6)])
def test_loadgen_events_all_reach_the_store(fleet_broker, tmp_path, mode, stations, per_process):
    db = f"sqlite:///{tmp_path / 'events.db'}"
    collector = Collector(parse_broker_url(fleet_broker.url), open_store(db), client_id=f"lg-{mode}")
    collector.start()
    assert collector.wait_connected(5)
    time.sleep(0.2)
    result = run_loadgen(
        fleet_broker.url, stations=stations, rate_per_s=200, duration_s=1.5, per_process=per_process, mode=mode
    )
    assert result.connected == stations and result.published > 200 and result.unacked == 0, result.summary()
    assert wait_until(lambda: collector.stats.stored >= result.published, 15), collector.stats
    collector.stop()
    with open_store(db) as store:
        cur = store.conn.cursor()
        cur.execute("SELECT COUNT(*), COUNT(DISTINCT station), COUNT(DISTINCT site) FROM events")
        assert cur.fetchone() == (result.published, stations, min(stations, 4))


def test_add_subcommands_hook():
    from headset_fleet.cli import add_subcommands

    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers(dest="command"))
    for argv in (
        ["provision", "inv.csv", "--out", "o"],
        ["monitor", "--broker", "mqtt://h"],
        ["collect", "--broker", "mqtt://h"],
        ["report", "--day", "2026-11-23"],
        ["loadgen", "--broker", "mqtt://h"],
    ):
        args = parser.parse_args(argv)
        assert callable(args.func), argv


def test_headset_station_console_lists_fleet_commands():
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from firmware.runtime.cli import main; sys.exit(main(['--help']))"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    for name in ("provision", "monitor", "collect", "report", "loadgen"):
        assert name in proc.stdout, proc.stdout


def test_bad_broker_url_and_db_url_are_one_line(tmp_path):
    proc = subprocess.run(
        [
            *FLEET,
            "collect",
            "--broker",
            "http://x",
            "--db",
            f"sqlite:///{tmp_path / 'e.db'}",
            "--duration-s",
            "0.1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not an mqtt://" in proc.stderr
    proc = subprocess.run(
        [*FLEET, "report", "--db", "mysql://x", "--day", "2026-11-23"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "unknown database URL" in proc.stderr


@pytest.mark.parametrize("mode", ["direct", "reporter"])
def test_loadgen_with_provisioned_credentials_through_the_acl(tmp_path, fleet_broker_factory, mode):
    from headset_fleet.provision import provision

    inv = tmp_path / "inv.csv"
    inv.write_text(
        "station_id,site,desk,profile\n" + "".join(f"st-{i:02d},site-{i % 2},D{i},hotline-5s\n" for i in range(6))
    )
    out = tmp_path / "out"
    provision(inv, out, default_broker="mqtt://127.0.0.1:1883")
    broker = fleet_broker_factory(passwd=out / "broker" / "passwd", acl=out / "broker" / "acl")
    pw = (out / "broker" / "collector-password").read_text().strip()
    db = f"sqlite:///{tmp_path / 'events.db'}"
    collector = Collector(
        parse_broker_url(f"mqtt://_collector:{pw}@127.0.0.1:{broker.port}"), open_store(db), client_id=f"acl-{mode}"
    )
    collector.start()
    assert collector.wait_connected(5)
    time.sleep(0.2)
    result = run_loadgen(broker.url, stations=100, rate_per_s=100, duration_s=1.0, provisioned=str(out), mode=mode)
    assert result.stations == result.connected == 6 and result.unacked == 0, result.summary()
    assert wait_until(lambda: collector.stats.stored >= result.published, 10), collector.stats
    collector.stop()
    assert collector.stats.stored == result.published > 50
