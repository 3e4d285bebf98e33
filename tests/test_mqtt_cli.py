"""End to end through the CLI: `headset-station replay --publish` into a real mosquitto.

Skipped until firmware/cli.py supports `--publish` (the lead wires it); the demo scenario
comes from hal.demo.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_mqtt import Collector

pytestmark = pytest.mark.integration  # real-time runs, subprocesses or the whole speech corpus

ROOT = Path(__file__).resolve().parent.parent
CLI_SOURCE = ROOT / "firmware" / "runtime" / "cli.py"


def replay(scenario, broker, state_dir):
    exe = shutil.which("headset-station", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "firmware.runtime.cli"]
    return subprocess.run(
        [
            *cmd,
            "replay",
            str(scenario),
            "--publish",
            "--broker",
            broker.url,
            "--station",
            "desk-9",
            "--state-dir",
            str(state_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.mark.skipif(
    not CLI_SOURCE.exists() or "--publish" not in CLI_SOURCE.read_text(),
    reason="firmware/runtime/cli.py has no replay --publish yet",
)
def test_replay_publish_delivers_every_printed_event_and_seq_continues(mqtt_broker, tmp_path):
    demo = pytest.importorskip("firmware.sim.demo")
    scenario = demo.demo_scenario(tmp_path / "demo")
    collector = Collector(mqtt_broker, "hs/+/desk-9/event")
    first = replay(scenario, mqtt_broker, tmp_path / "state")
    assert first.returncode == 0, first.stderr
    printed = [json.loads(line) for line in first.stdout.splitlines() if line.startswith("{")]
    assert printed
    assert collector.wait_for(lambda c: {e["id"] for e in c.payloads()} >= {e["id"] for e in printed}, 10)
    second = replay(scenario, mqtt_broker, tmp_path / "state")
    assert second.returncode == 0, second.stderr
    again = [json.loads(line) for line in second.stdout.splitlines() if line.startswith("{")]
    assert min(e["seq"] for e in again) > max(e["seq"] for e in printed)
    collector.close()
