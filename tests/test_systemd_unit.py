"""The systemd unit: notify + watchdog + restart, its user and directories, and its exposure score."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "headset-station.service"


def directives():
    out = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_lifecycle_directives():
    d = directives()
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["Restart"] == ["on-failure"]
    assert d["WatchdogSec"] and float(d["WatchdogSec"][0].rstrip("s")) >= 5
    assert d["User"] == ["headset"] and d["SupplementaryGroups"] == ["gpio audio"]
    assert d["StateDirectory"] == ["headset-station"]
    assert d["WorkingDirectory"] == ["/var/lib/headset-station"], "writable: lgpio's pipes go there"
    assert "--config /etc/headset-station/station.toml" in d["ExecStart"][0]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert {"char-gpiochip rw", "char-alsa rw"} <= set(d["DeviceAllow"])
    # The stop timeout leaves room for the 10 s outbox flush after SIGTERM.
    assert float(d["TimeoutStopSec"][0].rstrip("s")) > 10


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed (apt install systemd)")
def test_exposure_score_is_2_or_lower():
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout + proc.stderr)
    assert match, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert float(match.group(1)) <= 2.0, proc.stdout


def test_example_station_config_is_valid_and_lists_every_key():
    import dataclasses
    import tomllib

    from firmware.config.settings import SECTIONS, load_settings

    path = UNIT.parent.parent / "config" / "station.example.toml"
    load_settings(path)
    data = tomllib.loads(path.read_text())
    for name, cls in SECTIONS.items():
        missing = {f.name for f in dataclasses.fields(cls)} - set(data[name]) - {"cues"}
        assert not missing, f"[{name}] does not document {missing}"


def test_install_script_is_valid_bash_and_sets_up_the_unit():
    script = UNIT.parent.parent / "tools" / "install-pi"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    for needle in (
        "useradd --system",
        "gpio,audio",
        "/opt/headset-station",
        "/etc/headset-station",
        "systemctl enable",
        "headset-station.service",
    ):
        assert needle in text
