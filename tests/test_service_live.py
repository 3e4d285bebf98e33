"""The live service loop on the wall clock: real Pipeline, mock pins, real audio sources.

The service runs on a thread here (no signal handlers; those are tested in a subprocess
in test_service_signals.py) with a notifier that records what it would tell systemd.
"""

import threading
import time

import pytest
from fixtures_pulse import speech_wav

from firmware.config.settings import Settings
from firmware.runtime.service import Service
from firmware.sim.scenario import load_scenario

pytestmark = pytest.mark.integration  # real-time runs, subprocesses or the whole speech corpus


class Recorder:
    """Stands in for SdNotify and collects events, thread-safely enough for list appends."""

    def __init__(self, watchdog_s=None):
        self.sent, self.events, self.watchdog_s = [], [], watchdog_s

    def __call__(self, event):
        self.events.append(event)

    def of(self, type_):
        return [e for e in self.events if e["type"] == type_]

    def wait_for(self, type_, timeout_s=10.0, **fields):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for e in self.events:
                if e["type"] == type_ and all(e.get(k) == v for k, v in fields.items()):
                    return e
            time.sleep(0.02)
        raise AssertionError(f"no {type_} {fields} within {timeout_s} s; got {[e['type'] for e in self.events]}")

    # the SdNotify interface
    def notify(self, state):
        self.sent.append(state)
        return True

    def ready(self, status=None):
        return self.notify("READY=1")

    def stopping(self):
        return self.notify("STOPPING=1")

    def reloading(self):
        return self.notify("RELOADING=1")

    def status(self, text):
        return self.notify(f"STATUS={text}")

    def watchdog_ping(self):
        return self.notify("WATCHDOG=1")

    def watchdog_period(self):
        return self.watchdog_s

    def close(self):
        pass


def start_service(settings, rec, **kw):
    svc = Service(settings, notifier=rec, printer=rec, install_signals=False, **kw)
    svc.setup()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", svc.run()), daemon=True)
    thread.start()
    return svc, thread, result


def stop_service(svc, thread, drain_timeout_s=10.0):
    svc.request_stop()
    thread.join(5)
    svc.shutdown(drain_timeout_s)


def settings_for(**audio):
    base = {"backend": "silence", "rate_hz": 16000, "buffer_ms": 60}
    base.update(audio)
    return Settings().replace(
        audio=base,
        gpio={"pin_factory": "mock", "bounce_s": 0.02},
        leds={"kind": "tower"},
        profile={"hold_warn_s": 1.0, "hold_limit_s": 2.0},
    )


def test_ready_after_setup_and_gpio_edges_reach_the_rules():
    rec = Recorder()
    svc, thread, result = start_service(settings_for(), rec, simulate=True)
    try:
        assert rec.sent[0] == "READY=1"
        rec.wait_for("station.online")
        svc.gpio.pin("hook").drive_low()  # the real gpiozero Button path
        hook = rec.wait_for("hook", state="off")
        assert 0 < hook["t"] < 10
        rec.wait_for("call.start")
    finally:
        stop_service(svc, thread)
    assert result["rc"] == 0
    assert rec.events[-1]["type"] == "station.offline"
    assert rec.sent[-1] == "STOPPING=1"
    seqs = [e["seq"] for e in rec.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_device_loss_faults_within_2s_keeps_hold_timing_and_recovers(pulse):
    rec = Recorder()
    settings = settings_for(backend="pyaudio", device="pulse", reopen_s=0.3)
    svc, thread, _ = start_service(settings, rec)
    try:
        assert not rec.of("fault"), "the pulse device is there at start"
        svc.gpio.pin("hook").drive_low()
        rec.wait_for("call.start")
        pulse.play(speech_wav(), "front-left").wait(10)  # the agent greets: recorded speech on tx
        deadline = time.monotonic() + 5
        while not any(e["channel"] == "tx" and e["condition"] != "silent" for e in rec.of("line")):
            assert time.monotonic() < deadline, f"speech on tx not detected: {rec.of('line')}"
            time.sleep(0.05)
        pulse.kill()
        t_kill = svc.now()
        svc.gpio.pin("mute").drive_low()  # hold starts while the sound card is gone
        time.sleep(0.05)
        svc.gpio.pin("mute").drive_high()
        fault = rec.wait_for("fault", component="audio")
        assert fault["t"] - t_kill <= 2.0, fault
        assert svc.pipeline.station.state["faults"] == {"audio": fault["detail"]}
        assert any(e["cue"] == "fault" for e in rec.of("cue"))
        tower = [svc.factory.pin(p) for p in (5, 6, 13)]  # the LED tower, on mock pins
        flips = sum(len(p.states) for p in tower)
        time.sleep(1.2)
        assert sum(len(p.states) for p in tower) > flips, "the LEDs blink (fault or hold cue) with no audio"
        warn = rec.wait_for("hold.warn", timeout_s=5)
        limit = rec.wait_for("hold.limit", timeout_s=5)
        assert warn["t"] < limit["t"] and not rec.of("fault.cleared"), "timers ran with no audio"
        assert svc.now() - t_kill < 6
        pulse.start()
        cleared = rec.wait_for("fault.cleared", timeout_s=10, component="audio")
        assert cleared["t"] > limit["t"]
    finally:
        stop_service(svc, thread)


def test_simulated_scenario_drives_mock_pins_and_real_speech(tmp_path):
    wav = speech_wav()  # 8 kHz recorded speech, ~2 s
    (tmp_path / "s.toml").write_text(f"""
profile = "hotline-5s"
[audio]
tx = "{wav}"
[[inputs]]
t = 0.1
hook = "off"
[[inputs]]
t = 3.0
hook = "on"
""")
    rec = Recorder()
    scenario = load_scenario(tmp_path / "s.toml")
    from firmware.runtime.wiring import simulated_settings

    settings = simulated_settings(settings_for(), scenario)
    svc = Service(settings, simulate=True, scenario=scenario, notifier=rec, printer=rec, install_signals=False)
    svc.setup()
    t0 = time.monotonic()
    try:
        assert svc.run() == 0
    finally:
        svc.shutdown()
    wall_s = time.monotonic() - t0
    assert scenario.duration_s <= wall_s < scenario.duration_s + 4, "played in real time"
    assert [e["state"] for e in rec.of("hook")] == ["off", "on"]
    end = rec.wait_for("call.end")
    assert end["talk_s"]["tx"] > 0.8, end  # the agent's recorded speech was heard
    assert "greet-in-time" not in end["violations"]
    assert rec.events[-1]["type"] == "station.offline"


def test_watchdog_pings_stop_when_the_rules_loop_hangs():
    rec = Recorder(watchdog_s=0.4)
    hang = threading.Event()
    release = threading.Event()

    def printer(event):
        rec(event)
        if event["type"] == "hook":
            hang.set()
            release.wait(10)  # a sink that blocks the rules loop

    svc = Service(settings_for(), simulate=True, notifier=rec, printer=printer, install_signals=False)
    svc.setup()
    thread = threading.Thread(target=svc.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.6)
        assert rec.sent.count("WATCHDOG=1") >= 2
        svc.gpio.pin("hook").drive_low()
        assert hang.wait(2)
        time.sleep(0.3)  # max age is period/2 = 0.2 s
        pings = rec.sent.count("WATCHDOG=1")
        time.sleep(0.6)
        assert rec.sent.count("WATCHDOG=1") == pings, "no pings while the rules loop hangs"
        assert svc.pinger.stale == "rules"
        release.set()
        time.sleep(0.4)
        assert rec.sent.count("WATCHDOG=1") > pings, "pings resume once the loop is back"
    finally:
        release.set()
        stop_service(svc, thread)


def test_remote_commands_reach_the_running_rules_and_state_is_published(mqtt_broker, tmp_path):
    import json

    import paho.mqtt.publish as publish
    from fixtures_mqtt import Collector

    collector = Collector(mqtt_broker)
    rec = Recorder()
    settings = settings_for().replace(
        station={"id": "desk-3", "site": "s1", "state_dir": str(tmp_path / "state")},
        mqtt={"brokers": [mqtt_broker.url]},
    )
    svc, thread, _ = start_service(settings, rec, simulate=True)
    try:
        assert collector.wait_for(lambda c: c.payloads("/event"), 10)
        publish.single(
            "hs/s1/desk-3/cmd/set-config",
            json.dumps({"set": {"hold_limit_s": 3}, "id": 7}),
            qos=1,
            hostname="127.0.0.1",
            port=mqtt_broker.port,
        )
        assert collector.wait_for(lambda c: c.payloads("/cmd/set-config/reply"), 10)
        reply = collector.payloads("/cmd/set-config/reply")[0]
        assert reply["ok"] is True and reply["id"] == 7, reply
        assert svc.pipeline.profile.hold_limit_s == 3.0
        publish.single(
            "hs/s1/desk-3/cmd/set-config",
            json.dumps({"set": {"hold_limit_s": -1}}),
            qos=1,
            hostname="127.0.0.1",
            port=mqtt_broker.port,
        )
        assert collector.wait_for(lambda c: len(c.payloads("/cmd/set-config/reply")) == 2, 10)
        assert collector.payloads("/cmd/set-config/reply")[1]["ok"] is False
        assert svc.pipeline.profile.hold_limit_s == 3.0, "a bad command changes nothing"
        svc.gpio.pin("hook").drive_low()
        assert collector.wait_for(lambda c: any(s.get("hook") == "off" for s in c.payloads("/state")), 10)
    finally:
        stop_service(svc, thread)
        collector.close()


def test_a_hung_audio_read_stops_the_watchdog_but_a_lost_device_does_not(monkeypatch):
    import hal.audio
    from firmware.errors import AudioError

    release = threading.Event()
    mode = {"now": "ok"}

    class FlakySource(hal.audio.SilenceSource):
        def read(self):
            if mode["now"] == "hang":
                release.wait(10)  # a driver call that never returns
            if mode["now"] == "lost":
                raise AudioError("device unplugged")
            return super().read()

    monkeypatch.setitem(hal.audio.BACKENDS, "silence", FlakySource)
    rec = Recorder(watchdog_s=0.4)
    settings = settings_for(stall_fault_s=0.5, reopen_s=0.1)
    svc, thread, _ = start_service(settings, rec, simulate=True)
    try:

        def pings_during(seconds):
            before = rec.sent.count("WATCHDOG=1")
            time.sleep(seconds)
            return rec.sent.count("WATCHDOG=1") - before

        assert pings_during(0.5) >= 3
        mode["now"] = "lost"  # the capture loop keeps retrying: still alive
        rec.wait_for("fault", component="audio", timeout_s=2)
        assert pings_during(0.6) >= 3
        mode["now"] = "ok"
        rec.wait_for("fault.cleared", component="audio", timeout_s=2)
        mode["now"] = "hang"
        time.sleep(0.4)
        assert pings_during(0.6) == 0 and svc.pinger.stale == "audio"
        mode["now"] = "ok"
        release.set()
        assert pings_during(0.6) >= 1
    finally:
        release.set()
        stop_service(svc, thread)


def test_a_storage_fault_raised_inside_the_rules_loop_with_the_audio_queue_full_does_not_block_it(tmp_path):
    """Issue 12 item 9: the rules loop emits an event that pushes the outbox over its cap; the
    storage fault it raises must reach the station although 64 audio blocks are queued."""
    from fixtures_mqtt import free_port

    from firmware.protocol.envelope import to_json

    settings = settings_for(buffer_ms=10).replace(
        station={"state_dir": str(tmp_path / "state")},
        mqtt={"brokers": [f"mqtt://127.0.0.1:{free_port()}"], "outbox_max_mb": 1.0},
    )  # nobody listening
    rec = Recorder()
    armed = threading.Event()

    def printer(event):
        rec(event)
        if armed.is_set():  # the first event of the running loop: hold the loop until the audio queue is full
            armed.clear()
            deadline = time.monotonic() + 10
            while not svc.mailbox.audio_full and time.monotonic() < deadline:
                time.sleep(0.01)

    svc = Service(settings, simulate=True, notifier=rec, printer=printer, install_signals=False)
    svc.setup()
    box = svc.reporting.outbox
    filler = {"type": "filler", "seq": box.next_seq(), "pad": ""}
    room = box.max_bytes - box.size_bytes
    filler["pad"] = "x" * (room - 50 - 64 - len(to_json(filler)))
    box.put(filler)  # 50 bytes left under the cap: the next event goes over it
    assert not box.over_cap
    armed.set()
    thread = threading.Thread(target=svc.run, daemon=True)
    thread.start()
    try:
        svc.gpio.pin("hook").drive_low()
        fault = rec.wait_for("fault", component="storage", timeout_s=10)
        assert "over its cap" in fault["detail"]
        assert any(e["cue"] == "fault" for e in rec.of("cue"))
        svc.gpio.pin("hook").drive_high()
        rec.wait_for("hook", state="on", timeout_s=5)  # the loop is still running
    finally:
        stop_service(svc, thread, drain_timeout_s=0.5)  # nobody listening


def test_disk_full_raises_a_storage_fault_at_once_and_loses_nothing_once_space_returns(small_disk, mqtt_broker):
    """Issue 12 item 4: a full state directory with a live station and a real broker."""
    from fixtures_mqtt import Collector

    collector = Collector(mqtt_broker, "hs/+/+/event")
    rec = Recorder()
    settings = settings_for().replace(
        station={"state_dir": str(small_disk.path / "state")}, mqtt={"brokers": [mqtt_broker.url]}
    )
    svc, thread, _ = start_service(settings, rec, simulate=True)
    try:
        rec.wait_for("station.online")
        small_disk.fill()
        hook = svc.gpio.pin("hook")
        for i in range(6):  # calls while nothing can be written
            hook.drive_low()
            time.sleep(0.15)
            hook.drive_high()
            time.sleep(0.15)
        fault = rec.wait_for("fault", component="storage", timeout_s=5)
        assert fault["detail"].startswith("disk full"), fault
        assert svc.pipeline.station.state["faults"].get("storage") == fault["detail"]
        assert any(e["cue"] == "fault" for e in rec.of("cue") if e["t"] >= fault["t"])
        assert svc.reporting.outbox.held > 0
        assert not rec.of("fault.cleared")
        small_disk.free()
        cleared = rec.wait_for("fault.cleared", component="storage", timeout_s=10)
        assert cleared["t"] > fault["t"]
    finally:
        stop_service(svc, thread)
    printed = [e["seq"] for e in rec.events]
    assert len(rec.of("call.start")) == 6
    assert collector.wait_for(lambda c: {e["seq"] for e in c.payloads()} >= set(printed), 20), (
        f"lost: {sorted(set(printed) - {e['seq'] for e in collector.payloads()})[:10]}"
    )
    first = []
    for e in collector.payloads():
        if e["seq"] not in first:
            first.append(e["seq"])
    assert first == sorted(first), "first deliveries in seq order"
    collector.close()


def test_a_corrupt_outbox_is_moved_aside_and_the_station_runs_with_a_storage_fault(tmp_path):
    """Issue 12 item 5: it used to stop the station with no LED cue until a technician moved the file."""
    from fixtures_mqtt import free_port

    state = tmp_path / "state"
    state.mkdir()
    (state / "outbox.db").write_bytes(b"garbage, not SQLite " * 200)
    rec = Recorder()
    settings = settings_for().replace(
        station={"state_dir": str(state)}, mqtt={"brokers": [f"mqtt://127.0.0.1:{free_port()}"]}
    )
    svc, thread, _ = start_service(settings, rec, simulate=True)
    try:
        fault = rec.wait_for("fault", component="storage", timeout_s=5)
        assert "corrupt" in fault["detail"] and "outbox.db.corrupt-" in fault["detail"]
        assert len(list(state.glob("outbox.db.corrupt-*"))) == 1
        assert any(e["cue"] == "fault" for e in rec.of("cue") if e["t"] >= fault["t"])
        svc.gpio.pin("hook").drive_low()
        rec.wait_for("call.start", timeout_s=5)  # the station keeps working
        assert svc.reporting.outbox.event_depth > 0, "events are stored in the new outbox"
    finally:
        stop_service(svc, thread, drain_timeout_s=0.5)  # nobody listening


def test_invalid_persisted_overrides_do_not_stop_the_station(tmp_path):
    """A persisted set-config that no longer passes the checks (an old NaN, a type error) used
    to stop `run` at start; the station now runs on its config file with a storage fault."""
    from fixtures_mqtt import free_port

    state = tmp_path / "state"
    state.mkdir()
    (state / "overrides.json").write_text('{"hold_limit_s": "x"}')
    rec = Recorder()
    settings = settings_for().replace(
        station={"state_dir": str(state)}, mqtt={"brokers": [f"mqtt://127.0.0.1:{free_port()}"]}
    )
    svc, thread, _ = start_service(settings, rec, simulate=True)
    try:
        fault = rec.wait_for("fault", component="storage", timeout_s=5)
        assert "overrides" in fault["detail"] and "overrides.json.invalid-" in fault["detail"]
        assert svc.pipeline.profile.hold_limit_s == 2.0, "the config file's value"
        svc.gpio.pin("hook").drive_low()
        rec.wait_for("call.start", timeout_s=5)
    finally:
        stop_service(svc, thread, drain_timeout_s=0.5)  # nobody listening


@pytest.mark.parametrize("content", ['{"agent": ', '{"agent": 5}', '["x"]', '{"agent": "a\\u0000b"}'])
def test_an_invalid_persisted_agent_does_not_stop_the_station(tmp_path, content):
    """A corrupt or invalid agent.json (written by cmd/agent) used to stop `run` with exit 1;
    it is set aside like persisted overrides and the station runs with the config's agent."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "agent.json").write_text(content)
    rec = Recorder()
    settings = settings_for().replace(station={"state_dir": str(state), "agent": "cfg-agent"})
    svc, thread, _ = start_service(settings, rec, simulate=True)
    try:
        fault = rec.wait_for("fault", component="storage", timeout_s=5)
        assert "agent" in fault["detail"] and "agent.json.invalid-" in fault["detail"]
        assert not (state / "agent.json").exists()
        assert len(list(state.glob("agent.json.invalid-*"))) == 1
        svc.gpio.pin("hook").drive_low()
        start = rec.wait_for("call.start", timeout_s=5)
        assert start.get("agent") == "cfg-agent", "the config's station.agent"
    finally:
        stop_service(svc, thread, drain_timeout_s=0.5)


@pytest.mark.parametrize("status", [b"[]", b"[" * 50000 + b"]" * 50000, b'"online"', b"\xff"])
def test_a_foreign_status_payload_is_healed(mqtt_broker, tmp_path, status):
    """On a broker without ACLs any peer can overwrite a station's retained status; a payload
    that was JSON but not an object (or nested too deeply) raised inside the status check, so
    the station never republished its birth and monitors showed the foreign payload."""
    import json

    import paho.mqtt.publish as publish
    from fixtures_mqtt import Collector

    collector = Collector(mqtt_broker)
    rec = Recorder()
    settings = settings_for().replace(
        station={"id": "desk-4", "site": "s1", "state_dir": str(tmp_path / "state")},
        mqtt={"brokers": [mqtt_broker.url]},
    )
    svc, thread, _ = start_service(settings, rec, simulate=True)
    try:
        assert collector.wait_for(lambda c: c.payloads("/event"), 10)
        publish.single("hs/s1/desk-4/status", status, qos=1, retain=True, hostname="127.0.0.1", port=mqtt_broker.port)
        publish.single(
            "hs/s1/desk-4/cmd/ping", json.dumps({"id": 1}), qos=1, hostname="127.0.0.1", port=mqtt_broker.port
        )
        assert collector.wait_for(lambda c: c.payloads("/cmd/ping/reply"), 10), "the station still answers"

        def healed(c):
            with c.lock:
                last = [p for t, p, _r in c.messages if t.endswith("/status")][-1]
            return last.startswith(b'{"') and json.loads(last).get("status") == "online"

        assert collector.wait_for(healed, 10), "and heals its status"
    finally:
        stop_service(svc, thread)
        collector.close()
