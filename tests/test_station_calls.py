"""Station call state machine: online/offline, hook/mute/ring events, call.start/call.end
summaries, line and far-end events, odd input sequences. Synthetic edges on a virtual
clock: times are exact to 1 ms."""

import pytest
from fixtures_station import Harness, answered

TOL_S = 1e-3


def test_online_offline_and_idle_cue():
    h = Harness().start(0.0)
    online = h.one("station.online")
    assert online["profile"] == "hotline-5s" and online["firmware"]
    assert h.cues() == [(0.0, "idle")]
    h.stop(3.0)
    assert h.types()[-1] == "station.offline"
    assert h.station.state["cue"] == "idle"


def test_answered_call_summary():
    h = Harness().start()
    for t in (0.0, 4.0):
        h.input(t, "ring", True)
        h.input(t + 1.0, "ring", False)
    h.off(6.0)
    h.speech("tx", 6.5, 8.0)  # greeting
    h.speech("rx", 8.6, 12.0)
    h.speech("tx", 12.4, 15.0)
    h.speech("rx", 15.5, 16.0)
    h.input(20.0, "mute", True)
    h.input(30.0, "mute", False)
    h.speech("tx", 30.5, 32.0)
    h.on(40.0)
    start = h.one("call.start")
    assert start["rings"] == 2 and start["t"] == 6.0
    end = h.one("call.end")
    assert end["call"] == start["call"] and end["t"] == 40.0
    assert end["duration_s"] == pytest.approx(34.0, abs=TOL_S)
    assert end["talk_s"]["tx"] == pytest.approx(1.5 + 2.6 + 1.5, abs=TOL_S)
    assert end["talk_s"]["rx"] == pytest.approx(3.4 + 0.5, abs=TOL_S)
    assert end["hold_count"] == 1 and end["hold_s"] == pytest.approx(10.0)
    assert end["longest_hold_s"] == pytest.approx(10.0)
    assert [e["state"] for e in h.of("ring")] == [True, False, True, False]
    assert [e["state"] for e in h.of("hook")] == ["off", "on"]
    assert [e["state"] for e in h.of("mute")] == [True, False]
    assert h.station.state["call"] is None and h.station.state["cue"] == "idle"


def test_missed_call_does_not_start_a_call():
    h = Harness().start()
    for t in (0.0, 5.0, 10.0):
        h.input(t, "ring", True)
        h.input(t + 1.0, "ring", False)
    h.advance(30.0)
    assert not h.of("call.start")
    missed = h.one("call.missed")
    assert missed["rings"] == 3 and missed["t"] == pytest.approx(11.0 + 8.0, abs=TOL_S)


def test_ring_burst_counts_as_one_ring():
    h = Harness().start()
    for t in (0.0, 0.2, 0.4):  # a chattering optocoupler during one ring
        h.input(t, "ring", True)
        h.input(t + 0.1, "ring", False)
    h.off(2.0)
    assert h.one("call.start")["rings"] == 1


def test_mute_on_hook_and_hook_flapping():
    h = Harness().start()
    h.input(1.0, "mute", True)  # on hook: no call, no hold
    assert not h.of("hold.start") and h.one("mute")["state"] is True
    h.input(1.5, "mute", False)
    h.off(2.0)
    h.on(2.05)
    h.off(2.1)
    h.on(9.0)
    assert len(h.of("call.start")) == 2 and len(h.of("call.end")) == 2
    assert h.station.state["cue"] == "idle"


def test_hook_on_during_hold_ends_hold_and_call():
    h = answered()
    h.speech("tx", 0.5, 2.0)
    h.speech("rx", 2.5, 4.0)
    h.input(5.0, "mute", True)
    h.on(15.0)
    assert h.one("hold.end")["duration_s"] == pytest.approx(10.0)
    end = h.one("call.end")
    assert end["hold_s"] == pytest.approx(10.0) and end["hold_count"] == 1
    assert h.types().index("hold.end") < h.types().index("call.end")
    assert h.station.state["cue"] == "idle" and not h.station.timers.pending("hold:limit")


def test_started_mid_call():
    h = Harness().start(0.0, hook_off=True)
    start = h.one("call.start")
    assert start["rings"] == 0 and start["mid_call"] is True
    h.advance(30.0)
    assert not h.of("rule.violation")  # no greeting deadline when we joined late
    h.stop(31.0)
    assert h.one("call.end")["duration_s"] == pytest.approx(31.0)
    assert h.types()[-1] == "station.offline" and h.station.state["cue"] == "idle"


def test_started_mid_call_muted_is_on_hold():
    h = Harness().start(0.0, hook_off=True, muted=True)
    assert h.one("hold.start")["t"] == 0.0
    assert h.station.state["on_hold"]


def test_line_events_on_change_only():
    h = Harness().start()
    h.line(1.0, "rx", "ok")
    h.line(2.0, "rx", "ok")
    h.line(3.0, "rx", "noisy", level=-30, noise=-35)
    lines = h.of("line")
    assert [(e["t"], e["condition"]) for e in lines] == [(1.0, "ok"), (3.0, "noisy")]
    assert set(lines[1]) >= {"channel", "condition", "level_dbfs", "noise_dbfs", "snr_db"}
    assert h.station.state["line"]["rx"] == "noisy"


def test_farend_disconnect_once_per_call_and_not_outside_calls():
    h = Harness().start()
    h.tone(1.0)
    h.off(2.0)
    h.speech("tx", 2.5, 4.0)
    h.speech("rx", 4.5, 6.0)
    h.tone(12.0)
    h.tone(13.0)
    h.on(20.0)
    dis = h.one("farend.disconnect")
    assert dis["t"] == 12.0 and dis["tone"] == "busy-cn" and dis["call"] == h.one("call.start")["call"]
    assert "hangup-pause" not in h.one("call.end")["violations"]


def test_audio_stops_timers_still_run():
    h = answered()
    h.speech_start("tx", 0.5)  # the audio stops mid-utterance: no SpeechEnd ever
    h.input(1.0, "mute", True)
    h.advance(100.0)
    assert h.one("hold.limit")["t"] == pytest.approx(61.0, abs=TOL_S)
    h.on(120.0)
    end = h.one("call.end")
    assert end["talk_s"]["tx"] <= end["duration_s"]
    assert h.station.state["cue"] == "idle"


def test_unknown_input_reported_not_raised():
    h = Harness().start()
    h.input(1.0, "volume", 3)
    assert h.one("fault")["component"] == "gpio"


def test_seq_increases_and_t_non_decreasing():
    h = Harness().start()
    h.off(1.0)
    h.speech("tx", 1.5, 3.0)
    h.on(10.0)
    seqs = [e["seq"] for e in h.events]
    ts = [e["t"] for e in h.events]
    assert seqs == sorted(set(seqs)) and ts == sorted(ts)


def test_fault_cue_and_clear():
    h = Harness().start()
    h.station.on_fault(1.0, "audio", "device lost")
    assert h.station.state["cue"] == "fault"
    h.station.on_fault_cleared(2.0, "audio")
    assert h.one("fault.cleared")["component"] == "audio"
    assert h.station.state["cue"] == "idle"


def test_state_for_retained_topic():
    h = answered()
    h.input(1.0, "mute", True)
    h.advance(11.0)
    st = h.station.state
    assert st["on_hold"] and st["hold_s"] == pytest.approx(10.0) and st["hook"] == "off"
    assert st["cue"] == "hold" and st["call"] == h.one("call.start")["call"]


def test_bad_hook_value_is_reported():
    h = Harness().start()
    h.input(1.0, "hook", "lifted")
    assert h.one("fault")["detail"].startswith("hook input")
    assert not h.of("call.start")


def test_line_event_with_digital_silence_is_valid_json():
    import json

    h = Harness().start()
    h.line(1.0, "rx", "silent", level=float("-inf"), noise=float("-inf"))
    e = h.one("line")
    assert e["level_dbfs"] is None and e["snr_db"] is None
    json.dumps(e, allow_nan=False)
