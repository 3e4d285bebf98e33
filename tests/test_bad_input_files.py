"""Input files and URLs that used to crash (exit 70) or hang: each is one line and exit 2 or 78.

A FIFO or a device given as a scenario or WAV would block `open()` or never end, so the
station refuses anything that is not a regular file before reading a byte.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from firmware.sim.wav import write_wav

CLI = [sys.executable, "-m", "firmware.runtime.cli"]
ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, cwd=None, timeout=60):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout)


def assert_one_line_error(proc, code, *needles):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def test_run_simulate_with_a_scenario_of_inputs_only_plays_them(tmp_path):
    path = tmp_path / "inputs-only.toml"
    path.write_text('[[inputs]]\nt = 0.2\nhook = "off"\n[[inputs]]\nt = 0.8\nhook = "on"\n')
    proc = run_cli("run", "--simulate", "--scenario", path, "--format", "json", "--state-dir", tmp_path / "state")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["state"] for e in events if e["type"] == "hook"] == ["off", "on"]
    assert events[-1]["type"] == "station.offline"


def test_a_fifo_as_scenario_or_wav_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "pipe.toml")
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "s.toml").write_text('[audio]\ntx = "pipe.wav"\n')
    assert_one_line_error(run_cli("replay", tmp_path / "pipe.toml", timeout=20), 2, "pipe.toml", "FIFO")
    assert_one_line_error(
        run_cli("run", "--simulate", "--scenario", tmp_path / "pipe.toml", timeout=20), 2, "pipe.toml", "FIFO"
    )
    assert_one_line_error(run_cli("replay", tmp_path / "s.toml", timeout=20), 2, "pipe.wav", "FIFO")


def test_a_device_as_wav_is_refused(tmp_path):
    (tmp_path / "s.toml").write_text('[audio]\nrx = "/dev/zero"\n')
    assert_one_line_error(run_cli("replay", tmp_path / "s.toml", timeout=20), 2, "/dev/zero", "not a regular")


def test_a_wav_symlink_loop_is_one_line(tmp_path):
    (tmp_path / "a.wav").symlink_to("b.wav")
    (tmp_path / "b.wav").symlink_to("a.wav")
    (tmp_path / "s.toml").write_text('[audio]\ntx = "a.wav"\n')
    assert_one_line_error(run_cli("replay", tmp_path / "s.toml"), 2, "a.wav", "symbolic links")


def test_a_scenario_that_is_not_utf8_or_nested_too_deeply_is_one_line(tmp_path):
    (tmp_path / "bin.toml").write_bytes(b'profile = "\xff\xfe"\n')
    assert_one_line_error(run_cli("replay", tmp_path / "bin.toml"), 2, "bin.toml", "not valid TOML")
    (tmp_path / "deep.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    assert_one_line_error(run_cli("replay", tmp_path / "deep.toml"), 2, "deep.toml", "nested")


def test_an_unclosed_ipv6_broker_url_is_a_config_error(tmp_path):
    rng = np.random.default_rng(1)
    write_wav(tmp_path / "rx.wav", 16000, (rng.standard_normal(1600) * 1000).astype(np.int16))
    (tmp_path / "s.toml").write_text('[audio]\nrx = "rx.wav"\n')
    assert_one_line_error(run_cli("replay", tmp_path / "s.toml", "--broker", "mqtt://[::1"), 78, "--broker", "[::1")
    assert_one_line_error(run_cli("run", "--simulate", "--broker", "mqtt://[::1"), 78, "--broker", "[::1")
    config = tmp_path / "station.toml"
    config.write_text('[mqtt]\nbrokers = ["mqtt://[::1"]\n')
    proc = run_cli("check-config", config)
    assert proc.returncode == 78 and "[::1" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_an_unusable_state_dir_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_cli("run", "--simulate", "--state-dir", blocker / "state", "--broker", "mqtt://127.0.0.1:9")
    assert_one_line_error(proc, 78, "station.state_dir", "cannot be created")
