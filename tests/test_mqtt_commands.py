"""Remote commands: the pure handler, and the round trip through a real broker."""

import json

import pytest
from fixtures_mqtt import Collector, station_settings, wait_until

from firmware.config.profiles import load_profile
from firmware.errors import StorageError
from firmware.reporting.commands import MAX_PAYLOAD_BYTES, CommandHandler, load_overrides
from firmware.reporting.outbox import Outbox
from firmware.reporting.reporter import Reporter


class FakeStation:
    """The callbacks a station gives the handler, recording what they were asked to do."""

    def __init__(self, fail_apply=False):
        self.overrides = {}
        self.led_tests = 0
        self.restarts = 0
        self.fail_apply = fail_apply

    def get_config(self):
        return {"profile": "hotline-5s", "overrides": dict(self.overrides)}

    def apply(self, overrides):
        if self.fail_apply:
            raise RuntimeError("rules engine rejected it")
        self.overrides = overrides

    def led(self):
        self.led_tests += 1

    def restart(self):
        self.restarts += 1


@pytest.fixture
def handler(tmp_path):
    station = FakeStation()
    return CommandHandler(station.get_config, station.apply, station.led, station.restart, tmp_path), station


def test_ping_get_config_led_test_restart(handler):
    h, station = handler
    assert h.handle("ping", b"")["pong"] is True
    assert h.handle("ping", b'{"id": 42}')["id"] == 42
    assert h.handle("get-config", b"{}")["config"]["profile"] == "hotline-5s"
    assert h.handle("led-test", b"{}")["ok"] and station.led_tests == 1
    assert h.handle("restart", b"")["ok"] and station.restarts == 1


def test_set_config_applies_and_persists(handler, tmp_path):
    h, station = handler
    reply = h.handle("set-config", json.dumps({"id": "r1", "set": {"pause_s": 3, "hold_limit_s": 90}}).encode())
    assert reply == {"ok": True, "cmd": "set-config", "id": "r1", "overrides": {"pause_s": 3, "hold_limit_s": 90}}
    assert station.overrides == {"pause_s": 3, "hold_limit_s": 90}
    assert load_overrides(tmp_path) == {"pause_s": 3, "hold_limit_s": 90}
    reply = h.handle("set-config", b'{"unset": ["pause_s"]}')
    assert reply["overrides"] == {"hold_limit_s": 90} and load_overrides(tmp_path) == {"hold_limit_s": 90}
    # A new handler (after a restart) starts from the persisted overrides.
    again = CommandHandler(station.get_config, station.apply, station.led, station.restart, tmp_path)
    assert again.overrides == {"hold_limit_s": 90}


BAD = [
    ("set-config", b"{not json", "not valid UTF-8 JSON"),
    ("set-config", b"\xff\xfe", "not valid UTF-8 JSON"),
    ("set-config", b"[1, 2]", "must be a JSON object"),
    ("set-config", b'{"set": {"pause_s": "fast"}}', "expected a number"),
    ("set-config", b'{"set": {"pause_s": true}}', "expected a number"),
    ("set-config", b'{"set": {"pause_s": 1000}}', "outside"),
    ("set-config", b'{"set": {"volume": 3}}', "unknown profile key"),
    ("set-config", b'{"set": [1]}', "'set' must be an object"),
    ("set-config", b'{"unset": ["nope"]}', "unknown profile key"),
    ("set-config", b'{"unset": "pause_s"}', "'unset' must be a list"),
    ("set-config", b"{}", "nothing to change"),
    ("set-config", b'{"pause_s": 3}', "unknown key"),
    ("set-config", b'{"set": {"pause_s": 3}, "id": {"x": 1}}', "'id' must be"),
    ("ping", b'{"extra": 1}', "unknown key"),
    ("reboot-now", b"{}", "unknown command"),
    ("set-config", b'{"set": {"pause_s": 3}, "pad": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}', "over the 16384-byte limit"),
]


@pytest.mark.parametrize("name,payload,error", BAD, ids=[e for _n, _p, e in BAD])
def test_malformed_commands_get_an_error_and_change_nothing(handler, tmp_path, name, payload, error):
    h, station = handler
    h.handle("set-config", b'{"set": {"greet_s": 2.5}}')
    before = (dict(station.overrides), (tmp_path / "overrides.json").read_text())
    reply = h.handle(name, payload)
    assert reply["ok"] is False and error in reply["error"], reply
    assert "\n" not in reply["error"]
    assert (dict(station.overrides), (tmp_path / "overrides.json").read_text()) == before
    assert station.restarts == 0 and station.led_tests == 0


def test_a_rejected_apply_leaves_file_and_station_unchanged(tmp_path):
    station = FakeStation(fail_apply=True)
    h = CommandHandler(station.get_config, station.apply, station.led, station.restart, tmp_path)
    reply = h.handle("set-config", b'{"set": {"pause_s": 3}}')
    assert not reply["ok"] and "rules engine rejected it" in reply["error"]
    assert not (tmp_path / "overrides.json").exists() and not (tmp_path / "overrides.json.tmp").exists()
    assert h.overrides == {}


def test_corrupt_persisted_overrides_are_a_storage_error_naming_the_file(tmp_path):
    (tmp_path / "overrides.json").write_text('{"pause_s": "x"}')
    with pytest.raises(StorageError, match="overrides.json: invalid persisted overrides"):
        load_overrides(tmp_path)


def test_invalid_persisted_overrides_are_set_aside_at_start_not_fatal(tmp_path):
    (tmp_path / "overrides.json").write_text('{"pause_s": "x"}')
    station = FakeStation()
    h = CommandHandler(station.get_config, station.apply, station.led, station.restart, tmp_path)
    assert h.overrides == {} and "invalid persisted overrides" in h.dropped
    aside = list(tmp_path.glob("overrides.json.invalid-*"))
    assert len(aside) == 1 and aside[0].read_text() == '{"pause_s": "x"}' and aside[0].name in h.dropped
    assert not (tmp_path / "overrides.json").exists()


def test_commands_round_trip_through_the_broker(mqtt_broker, tmp_path, caplog):
    station = FakeStation()
    handler = CommandHandler(station.get_config, station.apply, station.led, station.restart, tmp_path / "s")
    outbox = Outbox.in_state_dir(tmp_path / "s")
    reporter = Reporter(
        station_settings(mqtt_broker.url, state_dir=tmp_path / "s"),
        outbox,
        profile_name="hotline-5s",
        on_command=handler,
    )
    central = Collector(mqtt_broker, "hs/site-1/desk-1/cmd/+/reply")
    # A retained command is ignored: it would otherwise run again at every reconnect.
    central.client.publish("hs/site-1/desk-1/cmd/restart", b"{}", 1, retain=True).wait_for_publish(5)
    reporter.start()
    try:
        assert wait_until(lambda: reporter.connected, 10)
        base = "hs/site-1/desk-1/cmd"
        central.client.publish(f"{base}/ping", b'{"id": 1}', 1)
        central.client.publish(f"{base}/set-config", b"\x00garbage", 1)
        central.client.publish(f"{base}/set-config", b"x" * (MAX_PAYLOAD_BYTES + 1), 1)
        central.client.publish(f"{base}/self-destruct", b"{}", 1)
        central.client.publish(f"{base}/set-config", b'{"id": 5, "set": {"dead_air_s": 7}}', 1)
        assert central.wait_for(lambda c: len(c.messages) >= 5, 10)
        replies = [(t.split("/")[-2], json.loads(p)) for t, p, _r in central.messages]
        assert [r for name, r in replies if name == "ping"][0] == {
            "ok": True,
            "cmd": "ping",
            "id": 1,
            "pong": True,
            "ts": replies[0][1]["ts"],
        }
        errors = [(name, r["error"]) for name, r in replies if not r["ok"]]
        assert sorted(name for name, _e in errors) == ["self-destruct", "set-config", "set-config"], errors
        assert [r for name, r in replies if r.get("id") == 5][0]["ok"] and station.overrides == {"dead_air_s": 7}
        assert station.restarts == 0  # the retained restart delivered on subscribe was ignored
        assert any("ignoring retained command" in r.getMessage() for r in caplog.records)
        central.client.publish(f"{base}/restart", b"{}", 1)
        assert wait_until(lambda: station.restarts == 1, 5)
        assert reporter.connected
    finally:
        reporter.stop()
        outbox.close()
        central.close()


def test_set_config_nan_over_the_broker_is_an_error_reply_and_nothing_persisted(mqtt_broker, tmp_path):
    """Issue 12: `{"set": {"hold_limit_s": NaN}}` was accepted, persisted and switched the hold rule off."""
    state = tmp_path / "s"
    applied = []
    handler = CommandHandler(
        dict, lambda o: applied.append(load_profile("hotline-5s", o)), lambda: None, lambda: None, state
    )
    outbox = Outbox.in_state_dir(state)
    reporter = Reporter(
        station_settings(mqtt_broker.url, state_dir=state), outbox, profile_name="hotline-5s", on_command=handler
    )
    central = Collector(mqtt_broker, "hs/site-1/desk-1/cmd/+/reply")
    reporter.start()
    try:
        assert wait_until(lambda: reporter.connected, 10)
        base = "hs/site-1/desk-1/cmd/set-config"
        for i, value in enumerate(["NaN", "Infinity", "-Infinity", "1e999", "-5"]):
            central.client.publish(base, f'{{"id": {i}, "set": {{"hold_limit_s": {value}}}}}'.encode(), 1)
        assert central.wait_for(lambda c: len(c.messages) >= 5, 10)
        replies = [json.loads(p) for _t, p, _r in central.messages]
        assert [r["ok"] for r in replies] == [False] * 5, replies
        assert all("hold_limit_s" in r["error"] or "not a number" in r["error"] for r in replies), replies
        assert not (state / "overrides.json").exists() and not applied and handler.overrides == {}
        central.client.publish(base, b'{"id": 9, "set": {"hold_limit_s": 90}}', 1)
        assert central.wait_for(lambda c: len(c.messages) >= 6, 10)
        assert json.loads(central.messages[-1][1])["ok"] is True
        assert json.loads((state / "overrides.json").read_text()) == {"hold_limit_s": 90}
    finally:
        reporter.stop()
        outbox.close()
        central.close()
