"""Collector against a real Mosquitto: dedupe, shared-subscription split, broker restart, PostgreSQL."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
from fixtures_fleet import FLEET
from fixtures_mqtt import wait_until

from firmware.protocol.envelope import EventFactory, to_json
from headset_fleet.collector import Collector
from headset_fleet.connect import parse_broker_url
from headset_fleet.store import open_store


def make_events(n: int, station: str = "st-1") -> list[dict]:
    factory = EventFactory(station, time.time())
    return [factory.make("hook", i * 0.1, None, state="off" if i % 2 == 0 else "on") for i in range(n)]


class Publisher:
    """A station-like publisher: QoS 1, resends anything the broker has not acknowledged."""

    def __init__(self, url: str, client_id: str = "test-pub"):
        self.broker = parse_broker_url(url)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect(self.broker.host, self.broker.port)
        self.client.loop_start()

    def publish(self, event: dict, site: str = "site-a", timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.client.publish(f"hs/{site}/{event['station']}/event", to_json(event), qos=1)
            try:
                info.wait_for_publish(timeout=1.0)
                if info.is_published():
                    return
            except (RuntimeError, ValueError):  # not connected: like the outbox, try again
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"event {event['seq']} never acknowledged")
            time.sleep(0.1)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def start_collector(url, db_url, group="g1", client_id="c1"):
    collector = Collector(parse_broker_url(url), open_store(db_url), group=group, client_id=client_id)
    collector.start()
    assert collector.wait_connected(5)
    time.sleep(0.2)  # SUBACK
    return collector


def stored_ids(db_url) -> list[str]:
    with open_store(db_url) as store:
        cur = store.conn.cursor()
        cur.execute("SELECT id FROM events")
        return [r[0] for r in cur.fetchall()]


def test_same_event_twice_is_stored_once(fleet_broker, tmp_path):
    db = f"sqlite:///{tmp_path / 'events.db'}"
    collector = start_collector(fleet_broker.url, db)
    pub = Publisher(fleet_broker.url)
    events = make_events(5)
    for e in events + events[:3]:
        pub.publish(e)
    assert wait_until(lambda: collector.stats.acked >= 8, 10)
    collector.stop()
    pub.close()
    assert sorted(stored_ids(db)) == sorted(e["id"] for e in events)
    assert collector.stats.duplicates == 3


def test_two_collectors_split_the_load(fleet_broker, tmp_path):
    db = f"sqlite:///{tmp_path / 'events.db'}"
    a = start_collector(fleet_broker.url, db, client_id="ca")
    b = start_collector(fleet_broker.url, db, client_id="cb")
    pub = Publisher(fleet_broker.url)
    events = make_events(200)
    for e in events:
        pub.publish(e)
    assert wait_until(lambda: a.stats.acked + b.stats.acked >= 200, 15)
    a.stop(), b.stop(), pub.close()
    assert a.stats.stored > 0 and b.stats.stored > 0, (a.stats, b.stats)
    assert a.stats.stored + b.stats.stored == 200
    ids = stored_ids(db)
    assert len(ids) == len(set(ids)) == 200 and set(ids) == {e["id"] for e in events}


def test_events_queued_while_collector_is_away_arrive_later(fleet_broker, tmp_path):
    db = f"sqlite:///{tmp_path / 'events.db'}"
    first = start_collector(fleet_broker.url, db)
    first.stop()  # persistent session: the broker queues for client id c1
    pub = Publisher(fleet_broker.url)
    events = make_events(50)
    for e in events:
        pub.publish(e)
    again = start_collector(fleet_broker.url, db)
    assert wait_until(lambda: again.stats.acked >= 50, 10), again.stats
    again.stop(), pub.close()
    assert len(stored_ids(db)) == 50


def test_broker_restart_mid_stream_loses_and_doubles_nothing(fleet_broker, tmp_path):
    db = f"sqlite:///{tmp_path / 'events.db'}"
    a = start_collector(fleet_broker.url, db, client_id="ra")
    b = start_collector(fleet_broker.url, db, client_id="rb")
    events = make_events(600)
    done = threading.Event()

    def produce():
        pub = Publisher(fleet_broker.url, "restart-pub")
        for e in events:
            pub.publish(e)
            time.sleep(0.002)
        pub.close()
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    assert wait_until(lambda: a.stats.stored + b.stats.stored > 150, 15)
    fleet_broker.restart(down_s=1.0)  # mid-stream
    producer.join(60)
    assert done.is_set()
    assert wait_until(lambda: len(stored_ids(db)) >= 600, 20), len(stored_ids(db))
    time.sleep(0.5)
    a.stop(), b.stop()
    ids = stored_ids(db)
    assert len(ids) == len(set(ids)) == 600
    assert set(ids) == {e["id"] for e in events}
    assert a.stats.connects >= 2 and b.stats.connects >= 2


def test_postgres_store_dedupes_and_collects(fleet_broker, fleet_pg_url):
    a = start_collector(fleet_broker.url, fleet_pg_url, client_id="pa")
    b = start_collector(fleet_broker.url, fleet_pg_url, client_id="pb")
    pub = Publisher(fleet_broker.url)
    events = make_events(100, "st-pg")
    for e in events + events[:10]:
        pub.publish(e, site="site-pg")
    assert wait_until(lambda: a.stats.acked + b.stats.acked >= 110, 15)
    a.stop(), b.stop(), pub.close()
    ids = stored_ids(fleet_pg_url)
    assert len(ids) == 100 and set(ids) == {e["id"] for e in events}
    with open_store(fleet_pg_url) as store:
        day = time.strftime("%Y-%m-%d", time.gmtime())
        from datetime import date

        got = store.events_for_day(date.fromisoformat(day))
        assert {e["site"] for e in got} == {"site-pg"}


def test_bad_message_is_acked_and_counted(fleet_broker, tmp_path):
    db = f"sqlite:///{tmp_path / 'events.db'}"
    collector = start_collector(fleet_broker.url, db)
    pub = Publisher(fleet_broker.url)
    pub.client.publish("hs/site-a/st-1/event", b"not json", qos=1).wait_for_publish(5)
    pub.client.publish("hs/site-a/st-1/event", json.dumps({"type": "x"}), qos=1).wait_for_publish(5)
    pub.publish(make_events(1)[0])
    assert wait_until(lambda: collector.stats.acked >= 3, 10)
    collector.stop(), pub.close()
    assert collector.stats.rejected == 2 and len(stored_ids(db)) == 1


def test_offline_member_keeps_its_share_until_it_is_retired(fleet_broker, tmp_path):
    """Mosquitto 2.0.11 still routes a share to an offline persistent member (delayed, not
    lost); `retire` stores that backlog and ends the session, so the others get everything."""
    db = f"sqlite:///{tmp_path / 'events.db'}"
    a = start_collector(fleet_broker.url, db, client_id="fa")
    b = start_collector(fleet_broker.url, db, client_id="fb")
    b.stop()
    pub = Publisher(fleet_broker.url)
    first = make_events(40)
    for e in first:
        pub.publish(e)
    assert wait_until(lambda: a.stats.stored >= 20, 5)
    # With 2.0.11 the other half waits in fb's session (a.stats.stored == 20); a broker that
    # skips offline members would give a all 40. Either way nothing is lost.
    retired = Collector(parse_broker_url(fleet_broker.url), open_store(db), group="g1", client_id="fb")
    retired.retire(idle_s=0.5)
    assert set(stored_ids(db)) == {e["id"] for e in first}
    later = make_events(40, "st-2")
    for e in later:
        pub.publish(e)
    assert wait_until(lambda: set(stored_ids(db)) >= {e["id"] for e in later}, 10)
    a.stop(), pub.close()
    assert len(stored_ids(db)) == 80
    assert a.stats.stored + retired.stats.stored == 80  # every later event went to the member left


def test_collect_command_stores_and_stops_on_sigterm(fleet_broker, tmp_path):
    import signal
    import subprocess

    db = f"sqlite:///{tmp_path / 'events.db'}"
    proc = subprocess.Popen(
        [
            *FLEET,
            "collect",
            "--broker",
            fleet_broker.url,
            "--db",
            db,
            "--client-id",
            "cli-1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: "cli-1" in fleet_broker.log(), 10)
        time.sleep(0.3)
        pub = Publisher(fleet_broker.url)
        events = make_events(20)
        for e in events:
            pub.publish(e)
        pub.close()
        assert wait_until(lambda: len(stored_ids(db)) == 20, 10)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stored 20, duplicates 0" in out


def test_odd_events_are_rejected_alone_not_retried_forever(fleet_broker, fleet_pg_url):
    """Values PostgreSQL would refuse (NUL, a seq past BIGINT, a non-ISO ts) reject only their
    own message; a numeric call id is stored as text; the good events of the batch are stored."""
    collector = start_collector(fleet_broker.url, fleet_pg_url, client_id="odd")
    pub = Publisher(fleet_broker.url)
    good = make_events(3)
    odd = [
        dict(good[0], id="nul", station="st\x00x"),
        dict(good[0], id="ts", ts="yesterday"),
        dict(good[0], id="bigseq", seq=2**70),
        dict(good[0], id="intcall", call=12345),
    ]
    for e in good + odd:
        pub.client.publish("hs/site-a/st-1/event", json.dumps(e), qos=1).wait_for_publish(5)
    assert wait_until(lambda: collector.stats.acked >= 7, 10), collector.stats
    collector.stop(), pub.close()
    assert collector.stats.rejected == 2 and collector.stats.store_errors == 0
    assert sorted(stored_ids(fleet_pg_url)) == sorted([e["id"] for e in good] + ["bigseq", "intcall"])


def test_postgres_connection_lost_mid_stream_loses_nothing(fleet_broker, fleet_pg_url):
    """The server drops the collector's connection (as on a PostgreSQL restart): the batch is
    not acknowledged, the store reconnects, and every event ends up stored once."""
    import psycopg

    collector = start_collector(fleet_broker.url, fleet_pg_url, client_id="pgdrop")
    pub = Publisher(fleet_broker.url)
    first, second = make_events(20), make_events(20, "st-2")
    for e in first:
        pub.publish(e)
    assert wait_until(lambda: collector.stats.stored >= 20, 10)
    with psycopg.connect(fleet_pg_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    for e in second:
        pub.publish(e)
    assert wait_until(lambda: len(stored_ids(fleet_pg_url)) >= 40, 20), collector.stats
    collector.stop(), pub.close()
    ids = stored_ids(fleet_pg_url)
    assert len(ids) == len(set(ids)) == 40
    assert collector.stats.store_errors >= 1  # the dropped connection was noticed, then healed


def test_collector_records_station_zones_from_status_and_the_report_uses_them(fleet_broker, tmp_path, monkeypatch):
    """The collector records each station's desk, agent and tz from its retained `status` birth
    (one sent before it started, one while it runs); the report then puts a Shanghai site's
    01:30 UTC call in its 09:00 hour with no --tz and no inventory. Precedence: --tz, then the
    inventory, then the zone the site's stations report, then the machine's (here UTC)."""
    from datetime import UTC, date, datetime
    from zoneinfo import ZoneInfo

    from headset_fleet.report import load_report

    monkeypatch.setenv("TZ", "UTC")
    db = f"sqlite:///{tmp_path / 'events.db'}"
    pub = Publisher(fleet_broker.url)

    def birth(site: str, station: str, **fields) -> None:
        record = {"status": "online", "bdSeq": 1, "boot_id": "b", "station": station, "site": site, **fields}
        pub.client.publish(f"hs/{site}/{station}/status", json.dumps(record), 1, retain=True).wait_for_publish(5)

    birth("sh", "st-9", desk="A-01", agent="ann", tz="Asia/Shanghai")  # retained, before the collector
    birth("xx", "st-4", tz="Not/AZone")  # a zone that does not exist: not used
    collector = start_collector(fleet_broker.url, db)
    birth("tk", "st-7", desk="T-01", tz="Asia/Tokyo")  # live, while it runs
    day = date(2026, 11, 23)
    events = []
    for site, station, hour in (("sh", "st-9", 1), ("tk", "st-7", 1), ("xx", "st-4", 1)):
        f = EventFactory(station, datetime(2026, 11, 23, hour, 30, tzinfo=UTC).timestamp())
        events += [
            (site, f.make("call.start", 0, "k1", rings=1)),
            (site, f.make("call.end", 60, "k1", duration_s=60.0)),
        ]
    for site, e in events:
        pub.publish(e, site=site)
    assert wait_until(lambda: collector.stats.stored >= len(events) and collector.stats.births >= 3, 10)
    collector.stop()
    pub.close()
    with open_store(db) as store:
        rows = {r[1]: r for r in store.conn.execute("SELECT site, station, desk, agent, tz FROM stations")}
        assert store.site_zones() == {"sh": "Asia/Shanghai", "tk": "Asia/Tokyo", "xx": "Not/AZone"}
    assert rows["st-9"] == ("sh", "st-9", "A-01", "ann", "Asia/Shanghai")
    assert rows["st-7"] == ("tk", "st-7", "T-01", None, "Asia/Tokyo")

    by_site = {s.site: s for s in load_report(db, day).sites}
    assert by_site["sh"].tz == ZoneInfo("Asia/Shanghai") and by_site["sh"].calls_by_hour[9] == 1
    assert by_site["tk"].tz == ZoneInfo("Asia/Tokyo") and by_site["tk"].calls_by_hour[10] == 1
    assert by_site["xx"].calls_by_hour[1] == 1  # an unknown reported zone: the machine's (UTC)
    inventory = tmp_path / "fleet.csv"
    inventory.write_text("station_id,site,desk,profile,tz\nst-9,sh,A-01,hotline-5s,Asia/Kolkata\n")
    by_site = {s.site: s for s in load_report(db, day, inventory=inventory).sites}
    assert by_site["sh"].tz == ZoneInfo("Asia/Kolkata") and by_site["sh"].calls_by_hour[7] == 1  # 01:30 UTC = 07:00
    assert by_site["tk"].tz == ZoneInfo("Asia/Tokyo")  # not in the inventory: still the reported zone
    by_site = {s.site: s for s in load_report(db, day, tz="UTC").sites}
    assert all(s.calls_by_hour[1] == 1 for s in by_site.values())
