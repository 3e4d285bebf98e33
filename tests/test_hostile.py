"""Holes found by the hostile test (issue 12): each test failed on main before its fix."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from firmware.errors import ConfigError
from firmware.protocol.brokers import read_password

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, timeout_s=60):
    return subprocess.run([sys.executable, "-m", "firmware.runtime.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout_s)


def one_line_refusal(proc, code, *needles):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert lines and "Traceback" not in proc.stderr, proc.stderr
    assert all(n in lines[-1] for n in needles), lines[-1]


@pytest.fixture
def fifo_password(tmp_path):
    fifo = tmp_path / "mqtt-password"
    os.mkfifo(fifo, 0o600)
    return fifo


def test_read_password_refuses_a_fifo_without_blocking(fifo_password):
    result = {}

    def read():
        try:
            result["password"] = read_password(str(fifo_password))
        except ConfigError as exc:
            result["error"] = str(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # it waits for a writer: give it one so the test ends
        os.close(os.open(fifo_password, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
        pytest.fail("read_password blocked on a FIFO")
    assert "mqtt.password_file" in result["error"] and "not a regular file" in result["error"]


def test_replay_publish_with_a_fifo_password_file_is_refused(tmp_path, fifo_password):
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[mqtt]\nbrokers = ["mqtt://127.0.0.1:1"]\npassword_file = "{fifo_password}"\n'
                   f'[station]\nstate_dir = "{tmp_path / "state"}"\n')
    scenario = tmp_path / "call.toml"
    scenario.write_text('[[inputs]]\nt = 0.5\nhook = "off"\n')
    proc = run_cli("replay", "--config", cfg, "--publish", "--drain-timeout", "1", scenario, timeout_s=30)
    one_line_refusal(proc, 78, "mqtt.password_file", "not a regular file")
