"""Cues on time and pauses to the frame, through `replay` on recorded speech (issue 11 item 4),
and `replay --block-ms` (item 6): the same events whatever block size feeds the pipeline."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from firmware.analysis.levels import power_to_dbfs
from firmware.sim import demo, speech
from firmware.sim.scenario import write_scenario

ROOT = Path(__file__).resolve().parent.parent
RATE = 16000


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "firmware.runtime.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def replay(*args):
    proc = run_cli("replay", *args)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def of_type(events, type_):
    return [e for e in events if e["type"] == type_]


def place(track, start_s, x):
    i = round(start_s * RATE)
    track[i : i + len(x)] += x[: len(track) - i]


def speech_end_s(samples, noise_dbfs, window_s=0.01, above_db=10.0):
    """Truth by construction: the end of the last 10 ms window of the clean prompt more than
    10 dB above the line noise it will be mixed with (where the word is still audible)."""
    n = int(RATE * window_s)
    frames = samples[: len(samples) // n * n].reshape(-1, n)
    level = power_to_dbfs(np.mean(frames * frames, axis=1))
    return (np.nonzero(level > noise_dbfs + above_db)[0][-1] + 1) * window_s


def test_agent_shouting_is_cued_while_still_shouting(tmp_path):
    """Two normal utterances set the baseline; then the agent shouts for 8 s (+14 dB):
    agent.loud and the lower_voice cue come within 1.5 s of the shout's start, not at its
    end; the final duration follows in agent.loud.end."""
    duration_s = 24.0
    tx, rx = np.zeros(int(duration_s * RATE)), np.zeros(int(duration_s * RATE))
    place(tx, 0.5, speech.scale_to(speech.load_prompt("vm-nobodyavail", RATE), -26.0, RATE))
    place(rx, 4.0, speech.scale_to(speech.load_prompt("vm-intro", RATE), -26.0, RATE))
    place(tx, 8.0, speech.scale_to(speech.load_prompt("pls-hold-while-try", RATE), -26.0, RATE))
    shout_s = 12.0
    shout = speech.scale_to(speech.load_prompt("demo-congrats", RATE)[: 8 * RATE], -12.0, RATE)
    place(tx, shout_s, shout)
    shout_start_s = shout_s + np.flatnonzero(np.abs(shout) > 100)[0] / RATE
    tx += speech.noise("pink", len(tx), RATE, seed=1, level_dbfs=-66.0)
    rx += speech.noise("white", len(rx), RATE, seed=2, level_dbfs=-62.0)
    scenario = write_scenario(
        tmp_path / "shout.toml", RATE, tx=tx, rx=rx, inputs=[(0.2, "hook", "off")], profile="hotline-5s"
    )
    events = replay(scenario)
    loud = of_type(events, "agent.loud")[0]
    assert shout_s + 1.0 <= loud["t"] <= shout_start_s + 1.5  # loud for 1 s, cued within 1.5 s
    assert loud["level_dbfs"] > loud["baseline_dbfs"] + 10
    cue_t = [e["t"] for e in of_type(events, "cue") if e["cue"] == "lower_voice"]
    assert cue_t and cue_t[0] == loud["t"]
    # The shout's first utterance runs for most of the 8 s (a pause in the prompt may end it and
    # a short last phrase then count on its own); its final duration comes when it ends.
    end = of_type(events, "agent.loud.end")[0]
    assert end["t"] > shout_s + 5.0 and end["duration_s"] >= 5.0


def test_hang_up_exactly_at_the_pause_complies(tmp_path):
    """Goodbyes, then hook on exactly hangup_pause_s (5 s) after the agent's last word ends:
    no hangup-pause violation (the end of speech is only known to a frame)."""
    tx, rx = np.zeros(int(20.0 * RATE)), np.zeros(int(20.0 * RATE))
    place(tx, 0.5, speech.scale_to(speech.load_prompt("hello-world", RATE), -24.0, RATE))
    place(rx, 3.0, speech.scale_to(speech.load_prompt("vm-goodbye", RATE), -26.0, RATE))
    bye = speech.scale_to(speech.load_prompt("goodbye", RATE), -24.0, RATE)
    place(tx, 5.0, bye)
    hang_up_s = round(5.0 + speech_end_s(bye, -66.0) + 5.0, 3)
    tx += speech.noise("pink", len(tx), RATE, seed=1, level_dbfs=-66.0)
    rx += speech.noise("white", len(rx), RATE, seed=2, level_dbfs=-62.0)
    scenario = write_scenario(
        tmp_path / "bye.toml",
        RATE,
        tx=tx,
        rx=rx,
        inputs=[(0.2, "hook", "off"), (hang_up_s, "hook", "on")],
        profile="hotline-5s",
    )
    events = replay(scenario)
    assert of_type(events, "hook")[-1]["t"] == hang_up_s
    assert not [e for e in of_type(events, "rule.violation") if e["rule"] == "hangup-pause"]
    # 0.2 s earlier is a violation, and its message shows the measured pause
    scenario = write_scenario(
        tmp_path / "soon.toml",
        RATE,
        tx=tx,
        rx=rx,
        inputs=[(0.2, "hook", "off"), (hang_up_s - 0.2, "hook", "on")],
        profile="hotline-5s",
    )
    (v,) = [e for e in of_type(replay(scenario), "rule.violation") if e["rule"] == "hangup-pause"]
    assert v["detail"].startswith("hung up 4.8 s after the last speech")


@pytest.fixture(scope="module")
def demo_call(tmp_path_factory):
    return demo.demo_scenario(tmp_path_factory.mktemp("demo"))


def strip(events):
    return [{k: v for k, v in e.items() if k not in ("id", "ts")} for e in events]


def test_live_blocks_give_the_same_events_as_the_default(demo_call):
    default = replay(demo_call)
    assert of_type(default, "script.step") and of_type(default, "hold.start")
    assert strip(replay(demo_call, "--block-ms", 30)) == strip(default)


@pytest.mark.parametrize("value", ["nan", "inf", "-30", "5", "10001", "abc", ""])
def test_bad_block_size_is_one_line(demo_call, value):
    proc = run_cli("replay", demo_call, "--block-ms", value)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--block-ms" in proc.stderr and proc.stdout == ""
