"""Desk and agent identity end to end: the inventory's desk/agent/tz columns into the station
config, `cmd/agent` (validated, persisted), the status/birth, the retained state and the events'
additive `desk`/`agent` fields, and the store's desk/agent columns."""

from __future__ import annotations

import json
import tomllib

import pytest
from fixtures_mqtt import Collector, wait_until
from test_service_live import Recorder, settings_for, start_service, stop_service

from firmware.config.settings import settings_from_dict
from firmware.errors import ConfigError, StorageError
from firmware.reporting.commands import AGENT_FILE, CommandHandler, load_agent
from headset_fleet.errors import InventoryError
from headset_fleet.provision import provision, read_inventory
from headset_fleet.store import event_row, open_store


class Agents:
    def __init__(self, fail=False):
        self.set, self.fail = [], fail

    def __call__(self, agent):
        if self.fail:
            raise RuntimeError("station refused")
        self.set.append(agent)


def _handler(tmp_path, agents):
    return CommandHandler(dict, lambda o: None, lambda: None, lambda: None, tmp_path, set_agent=agents)


def test_agent_command_sets_persists_and_logs_out(tmp_path):
    agents = Agents()
    h = _handler(tmp_path, agents)
    assert load_agent(tmp_path) is None  # never set: the config's station.agent applies
    assert h.handle("agent", '{"agent": "王芳 (Fang Wang)", "id": 3}'.encode()) == {
        "ok": True,
        "cmd": "agent",
        "id": 3,
        "agent": "王芳 (Fang Wang)",
    }
    assert load_agent(tmp_path) == "王芳 (Fang Wang)" and agents.set == ["王芳 (Fang Wang)"]
    assert h.handle("agent", b'{"agent": null}')["ok"]
    assert load_agent(tmp_path) == "" and agents.set[-1] is None  # logged out, and that survives a restart


BAD_AGENTS = [
    b'{"agent": ""}',
    b'{"agent": "   "}',
    b'{"agent": 42}',
    b'{"agent": ["x"]}',
    b'{"agent": "tab\\there"}',
    ('{"agent": "' + "x" * 65 + '"}').encode(),
    b"{}",
    b'{"agent": "ann", "desk": "B-2"}',
]


@pytest.mark.parametrize("payload", BAD_AGENTS)
def test_bad_agent_commands_change_nothing(tmp_path, payload):
    agents = Agents()
    h = _handler(tmp_path, agents)
    h.handle("agent", b'{"agent": "ann"}')
    reply = h.handle("agent", payload)
    assert reply["ok"] is False and "agent" in reply["error"] and "\n" not in reply["error"]
    assert load_agent(tmp_path) == "ann" and agents.set == ["ann"]


def test_a_refused_agent_leaves_no_file(tmp_path):
    h = _handler(tmp_path, Agents(fail=True))
    assert not h.handle("agent", b'{"agent": "ann"}')["ok"]
    assert not list(tmp_path.iterdir())


def test_a_corrupt_agent_file_is_a_storage_error(tmp_path):
    (tmp_path / AGENT_FILE).write_text('{"agent": "a\\u0000b"}')
    with pytest.raises(StorageError, match="invalid persisted agent"):
        load_agent(tmp_path)


def test_station_config_checks_desk_agent_and_tz():
    ok = settings_from_dict({"station": {"desk": "A-01", "agent": "ann", "tz": "Asia/Shanghai"}})
    assert (ok.station.desk, ok.station.agent, ok.station.tz) == ("A-01", "ann", "Asia/Shanghai")
    with pytest.raises(ConfigError) as err:
        settings_from_dict({"station": {"desk": "x" * 65, "agent": "a\nb", "tz": "Mars/Base"}})
    assert [p.split(":")[0] for p in err.value.problems] == ["station.desk", "station.agent", "station.tz"]


def test_inventory_desk_agent_and_tz_reach_the_station_config(tmp_path):
    inv = tmp_path / "fleet.csv"
    inv.write_text(
        "station_id,site,desk,profile,agent,tz\n"
        "st-1,sh,A-01,hotline-5s,ann,Asia/Shanghai\n"
        "st-2,sh,A-02,hotline-5s,,Asia/Shanghai\n"
        "st-3,bj,,hotline-5s,,\n"
    )
    provision(inv, tmp_path / "out", default_broker="mqtt://127.0.0.1:1883")
    st1 = tomllib.loads((tmp_path / "out/stations/st-1/station.toml").read_text())["station"]
    assert (st1["desk"], st1["agent"], st1["tz"]) == ("A-01", "ann", "Asia/Shanghai")
    st2 = tomllib.loads((tmp_path / "out/stations/st-2/station.toml").read_text())["station"]
    assert st2["desk"] == "A-02" and "agent" not in st2
    st3 = tomllib.loads((tmp_path / "out/stations/st-3/station.toml").read_text())["station"]
    assert not {"desk", "agent", "tz"} & set(st3)
    for body, word in (
        ("st-1,sh,A-01,hotline-5s,ann,Mars/Base\n", "tz"),
        ("st-1,sh,A-01,hotline-5s,ann,Asia/Shanghai\nst-2,sh,A-02,hotline-5s,,Europe/Paris\n", "differs"),
        ("st-1,sh,A-01,hotline-5s," + "x" * 65 + ",\n", "agent"),
    ):
        inv.write_text("station_id,site,desk,profile,agent,tz\n" + body)
        with pytest.raises(InventoryError, match=word) as err:
            read_inventory(inv, "mqtt://127.0.0.1:1883")
        assert str(err.value).startswith(f"{inv}:") and "\n" not in str(err.value)


@pytest.mark.integration
def test_desk_and_agent_reach_status_state_events_and_the_store(mqtt_broker, tmp_path):
    import paho.mqtt.publish as publish

    collector = Collector(mqtt_broker)
    state_dir = tmp_path / "state"
    settings = settings_for().replace(
        station={
            "id": "desk-3",
            "site": "s1",
            "state_dir": str(state_dir),
            "desk": "A-01",
            "agent": "ann",
            "tz": "Asia/Shanghai",
        },
        mqtt={"brokers": [mqtt_broker.url]},
    )

    def command(payload: dict) -> dict:
        n = len(collector.payloads("/cmd/agent/reply"))
        publish.single(
            "hs/s1/desk-3/cmd/agent", json.dumps(payload), qos=1, hostname="127.0.0.1", port=mqtt_broker.port
        )
        assert collector.wait_for(lambda c: len(c.payloads("/cmd/agent/reply")) > n, 10)
        return collector.payloads("/cmd/agent/reply")[n]

    rec = Recorder()
    svc, thread, _ = start_service(settings, rec, simulate=True)
    try:
        assert collector.wait_for(lambda c: c.payloads("/status"), 10)
        birth = collector.payloads("/status")[-1]
        assert (birth["desk"], birth["agent"], birth["tz"], birth["site"]) == ("A-01", "ann", "Asia/Shanghai", "s1")
        assert "cmd:agent" in birth["capabilities"]
        svc.gpio.pin("hook").drive_low()
        start = rec.wait_for("call.start")
        assert (start["desk"], start["agent"]) == ("A-01", "ann")
        assert collector.wait_for(
            lambda c: any(
                s.get("hook") == "off" and s.get("agent") == "ann" and s.get("desk") == "A-01"
                for s in c.payloads("/state")
            ),
            10,
        )
        assert command({"agent": "bob", "id": 1}) == {"ok": True, "cmd": "agent", "id": 1, "agent": "bob"}
        assert collector.wait_for(lambda c: c.payloads("/state")[-1].get("agent") == "bob", 10)
        assert collector.wait_for(lambda c: c.payloads("/status")[-1].get("agent") == "bob", 10)
        svc.gpio.pin("hook").drive_high()
        rec.wait_for("call.end")
        assert rec.of("call.end")[-1]["agent"] == "bob"
        assert not command({"agent": "x" * 65})["ok"]
        assert command({"agent": None})["ok"]
        assert collector.wait_for(lambda c: c.payloads("/state")[-1].get("agent", "?") is None, 10)
        svc.gpio.pin("hook").drive_low()
        assert wait_until(lambda: len(rec.of("call.start")) == 2, 10)
        assert "agent" not in rec.of("call.start")[-1]
        assert collector.wait_for(
            lambda c: len([e for e in c.payloads("/event") if e["type"] == "call.start"]) == 2, 10
        )
    finally:
        stop_service(svc, thread)
    starts = [e for e in collector.payloads("/event") if e["type"] == "call.start"]
    assert [e.get("agent") for e in starts] == ["ann", None] and all(e["desk"] == "A-01" for e in starts)
    with open_store(f"sqlite:///{tmp_path / 'events.db'}") as store:  # what the collector stores
        store.insert_many([event_row("s1", e, 0.0) for e in collector.payloads("/event")])
        cur = store.conn.cursor()
        cur.execute("SELECT desk, agent FROM events WHERE type = 'call.start' ORDER BY seq")
        assert cur.fetchall() == [("A-01", "ann"), ("A-01", None)]

    # A restart keeps the logout: the persisted agent wins over the config's "ann".
    with collector.lock:
        collector.messages.clear()
    svc, thread, _ = start_service(settings, Recorder(), simulate=True)
    try:
        assert wait_until(lambda: any(s.get("status") == "online" for s in collector.payloads("/status")), 10)
        assert [s for s in collector.payloads("/status") if s.get("status") == "online"][-1]["agent"] is None
    finally:
        stop_service(svc, thread)
        collector.close()
