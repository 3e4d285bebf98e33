"""`headset-station replay` end to end: the demo call built from recorded speech, through the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from firmware.sim import demo, speech
from firmware.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
FRAME_S = 0.03


def replay(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "firmware.runtime.cli", "replay", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.fixture(scope="module")
def demo_call(tmp_path_factory):
    return demo.demo_scenario(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def demo_events(demo_call):
    return replay(demo_call)


def of_type(events, type_):
    return [e for e in events if e["type"] == type_]


def test_envelope_fields_and_order(demo_events):
    assert demo_events[0]["type"] == "station.online"
    assert demo_events[-1]["type"] == "station.offline"
    for e in demo_events:
        assert {"type", "t", "ts", "station", "seq", "id", "call"} <= e.keys()
        assert e["ts"].endswith("Z")
    seqs = [e["seq"] for e in demo_events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    ts = [e["t"] for e in demo_events]
    assert ts == sorted(ts), "events must come out in time order"
    assert len({e["id"] for e in demo_events}) == len(demo_events)


def test_inputs_and_call_summary(demo_events):
    rings = of_type(demo_events, "ring")
    assert [(e["t"], e["state"]) for e in rings] == [(0.5, True), (1.5, False), (3.0, True), (4.0, False)]
    hooks = of_type(demo_events, "hook")
    assert [(e["t"], e["state"]) for e in hooks] == [(5.0, "off"), (41.5, "on")]
    (start,) = of_type(demo_events, "call.start")
    assert start["t"] == 5.0 and start["rings"] == 2
    (end,) = of_type(demo_events, "call.end")
    assert end["call"] == start["call"]
    assert end["duration_s"] == pytest.approx(36.5, abs=0.01)
    assert end["hold_count"] == 1 and end["hold_s"] == pytest.approx(8.0, abs=0.01)
    assert end["longest_hold_s"] == pytest.approx(8.0, abs=0.01)
    # Talk time from the placed prompts, within the VAD's onset/hangover per utterance.
    agent_s = sum(len(speech.load_prompt(n, 16000)) / 16000 for _, n in demo.AGENT)
    customer_s = sum(len(speech.load_prompt(n, 16000)) / 16000 for _, n in demo.CUSTOMER)
    assert end["talk_s"]["tx"] == pytest.approx(agent_s, abs=0.25 * len(demo.AGENT))
    assert end["talk_s"]["rx"] == pytest.approx(customer_s, abs=0.25 * len(demo.CUSTOMER))
    assert end["overtalk_count"] == 0
    # The demo follows the standard: greeting in time, pauses kept, the agent's goodbye last.
    assert end["violations"] == [] and end["dead_air_s"] == 0
    assert not of_type(demo_events, "rule.violation")
    shown = [e["cue"] for e in of_type(demo_events, "cue")]
    assert "say_wait" not in shown and "fault" not in shown
    assert shown[-1] == "idle"


def test_line_events_report_the_levels(demo_events):
    lines = of_type(demo_events, "line")
    ok = {e["channel"]: e for e in lines if e["condition"] == "ok"}
    assert set(ok) == {"tx", "rx"}
    # The demo places the agent at -24 dBFS and the customer at -28 dBFS active level.
    assert ok["tx"]["level_dbfs"] == pytest.approx(-24, abs=2)
    assert ok["rx"]["level_dbfs"] == pytest.approx(-28, abs=2)
    assert ok["rx"]["noise_dbfs"] < -55
    for e in lines:
        assert e["snr_db"] == pytest.approx(e["level_dbfs"] - e["noise_dbfs"], abs=0.2)


def speech_end_s(samples, rate_hz, window_s=0.01, range_db=30.0):
    """Truth by construction: the end of the last 10 ms window within 30 dB of the loudest."""
    n = int(rate_hz * window_s)
    frames = samples[: len(samples) // n * n].reshape(-1, n)
    level_db = 10 * np.log10(np.mean(frames.astype(float) ** 2, axis=1) + 1e-9)
    last = np.nonzero(level_db > level_db.max() - range_db)[0][-1]
    return (last + 1) * window_s


def test_silent_call_step_is_due_exactly_pause_after_greeting(demo_events):
    # Step 1 is due pause_s (5 s) after the greeting's last word, to the frame.
    greet_start, name = demo.AGENT[0]
    greet_end = greet_start + speech_end_s(speech.load_prompt(name, 16000), 16000)
    step = of_type(demo_events, "script.step")[0]
    assert step["script"] == "silent-call" and step["step"] == 1 and not step["final"]
    assert step["t"] == pytest.approx(greet_end + 5.0, abs=FRAME_S + 0.001)


def test_replay_is_deterministic_apart_from_ids(demo_call, demo_events):
    again = replay(demo_call)
    strip = lambda evs: [{k: v for k, v in e.items() if k not in ("id", "ts")} for e in evs]  # noqa: E731
    assert strip(again) == strip(demo_events)


def test_far_end_busy_tone(tmp_path):
    """The customer hangs up mid-conversation: the line plays the China busy tone."""
    rate = 16000
    talk = speech.speech_track(["agent-newlocation"], 0, rate, -26.0, lead_s=2.0, tail_s=0.5)
    busy = speech.tone([450.0], (0.35, 0.35), 4.0, rate, level_dbfs=-20.0)
    rx = np.concatenate([talk, busy, speech.silence(1.0, rate)])
    speech.write(tmp_path / "rx.wav", rx, rate)
    tx = speech.speech_track(["hello-world"], 0, rate, -24.0, lead_s=0.2, tail_s=len(rx) / rate - 1.6)
    speech.write(tmp_path / "tx.wav", tx[: len(rx)], rate)
    (tmp_path / "s.toml").write_text(
        'profile = "hotline-5s"\n[audio]\nrx = "rx.wav"\ntx = "tx.wav"\n[[inputs]]\nt = 0.0\nhook = "off"\n'
    )
    events = replay(tmp_path / "s.toml")
    (gone,) = of_type(events, "farend.disconnect")
    tone_start = len(talk) / rate
    assert gone["tone"].startswith("busy")
    assert tone_start < gone["t"] < tone_start + 3.0
    assert gone["call"] is not None
    # A call cut off mid-conversation: the agent is cued to call back.
    assert any(e["type"] == "cue" and e["cue"] == "call_back" for e in events)


def test_scenario_duration_covers_last_input(demo_call):
    sc = load_scenario(demo_call)
    assert sc.duration_s == pytest.approx(max(demo.DURATION_S, demo.INPUTS[-1][0]))
