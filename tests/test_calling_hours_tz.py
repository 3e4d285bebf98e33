"""The calling-hours rule reads the station's own zone (`station.tz`), not the Pi's local time."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def replay_violations(tmp_path, start, tz):
    scenario = tmp_path / "call.toml"
    scenario.write_text(
        f'profile = "return-visit"\nstart = "{start}"\n\n'
        '[[inputs]]\nt = 1.0\nhook = "off"\n\n[[inputs]]\nt = 4.0\nhook = "on"\n'
    )
    config = tmp_path / "station.toml"
    config.write_text(f'[station]\ntz = "{tz}"\n' if tz else "")
    proc = subprocess.run(
        [sys.executable, "-m", "firmware.runtime.cli", "replay", "--config", str(config), str(scenario)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert any(e["type"] == "call.start" for e in events)
    return [e for e in events if e["type"] == "rule.violation" and e["rule"] == "calling-hours"]


# return-visit windows: 10:30-11:30, 15:00-17:30, 19:00-20:30
@pytest.mark.parametrize(
    "start,tz,inside",
    [
        ("2026-11-23T10:45:00+00:00", "Asia/Shanghai", False),  # 18:45 in Shanghai
        ("2026-11-23T10:45:00+00:00", "Europe/London", True),  # 10:45 in London
        ("2026-11-23T02:45:00+00:00", "Asia/Shanghai", True),  # 10:45 in Shanghai
        ("2026-07-01T14:45:00+00:00", "America/New_York", True),  # 10:45 EDT (summer time, not -05:00)
        ("2026-12-01T14:45:00+00:00", "America/New_York", False),  # 09:45 EST
        ("2026-11-23T18:45:00+08:00", "Asia/Shanghai", False),  # same instant as the first, other offset
    ],
)
def test_calling_hours_use_station_tz(tmp_path, start, tz, inside):
    violations = replay_violations(tmp_path, start, tz)
    assert (violations == []) == inside, violations


def test_without_tz_the_scenario_start_offset_is_local_time(tmp_path):
    assert replay_violations(tmp_path, "2026-11-23T10:45:00+00:00", "") == []
    assert replay_violations(tmp_path, "2026-11-23T18:45:00+08:00", "")  # 18:45 at +08:00
