"""One code path: `run --simulate --scenario` (wall clock, mock pins through gpiozero, audio
played in real time) gives the events `replay` (virtual clock) gives, at the same times.

Tolerance: an input reaches the rules through gpiozero's debounce (gpio.bounce_s, 50 ms) and
a thread hop; audio arrives in capture blocks (audio.buffer_ms, 30 ms) stamped on arrival;
plus one 30 ms frame. 0.15 s covers that sum; a real mismatch (a step one pause late, a
missing event) is seconds off or absent.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.sim import demo
from firmware.sim.scenario import write_scenario

pytestmark = pytest.mark.integration  # real-time runs, subprocesses or the whole speech corpus

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE_S = 0.15
COMPARED = ("hook", "mute", "call.start", "script.step", "hold.start", "hold.end", "call.end", "rule.violation")

AGENT = [(1.0, "hello-world"), (4.8, "hello"), (15.0, "goodbye")]
CUSTOMER = [(8.2, "agent-newlocation")]
INPUTS = [(0.5, "hook", "off"), (12.0, "mute", True), (14.0, "mute", False), (18.5, "hook", "on")]
DURATION_S = 19.0


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    d = tmp_path_factory.mktemp("call")
    rate = 16000
    return write_scenario(
        d / "s.toml",
        rate,
        tx=demo.place_prompts(AGENT, DURATION_S, rate, -24.0),
        rx=demo.place_prompts(CUSTOMER, DURATION_S, rate, -28.0),
        inputs=INPUTS,
        profile="service-2s",
    )


def cli(*args, timeout=120):
    proc = subprocess.run(
        [sys.executable, "-m", "firmware.runtime.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def key(e):
    """What must agree besides the time."""
    fields = {k: v for k, v in e.items() if k not in ("t", "ts", "seq", "id", "call", "station")}
    if e["type"] == "call.end":  # durations and talk time carry the same small timing slack
        fields = {"violations": sorted(fields["violations"]), "hold_count": fields["hold_count"]}
    for k in ("after_s", "duration_s"):
        fields.pop(k, None)
    return e["type"], json.dumps(fields, sort_keys=True, ensure_ascii=False)


def test_run_gives_the_replay_events_at_the_replay_times(scenario, tmp_path):
    replayed = [e for e in cli("replay", scenario) if e["type"] in COMPARED]
    live = [
        e
        for e in cli("run", "--simulate", "--scenario", scenario, "--format", "json", "--state-dir", tmp_path / "state")
        if e["type"] in COMPARED
    ]
    # The script must have run for the comparison to mean something: steps 1 and 2, then the customer.
    steps = [e["step"] for e in replayed if e["type"] == "script.step"]
    assert steps == [1, 2], replayed
    assert [key(e) for e in live] == [key(e) for e in replayed]
    for r, w in zip(replayed, live):
        assert abs(w["t"] - r["t"]) <= TOLERANCE_S, (r, w)
    end_r, end_w = replayed[-1], live[-1]
    assert end_w["duration_s"] == pytest.approx(end_r["duration_s"], abs=TOLERANCE_S)
    assert end_w["hold_s"] == pytest.approx(end_r["hold_s"], abs=TOLERANCE_S)
