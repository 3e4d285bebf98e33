"""The service as systemd runs it: a process with NOTIFY_SOCKET, SIGTERM and SIGHUP."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # real-time runs, subprocesses or the whole speech corpus

ROOT = Path(__file__).resolve().parent.parent
RUNNER = """
import json, sys
from firmware.runtime.service import run_service
from firmware.config.settings import load_settings
printer = lambda e: print(json.dumps(e), flush=True)
sys.exit(run_service(load_settings(sys.argv[1]), simulate=True, printer=printer))
"""
CONFIG = """
[station]
id = "desk-7"
profile = "{profile}"
state_dir = "{state}"
[audio]
backend = "silence"
[leds]
kind = "none"
"""


@pytest.fixture
def notify(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield str(path), sock
    sock.close()


def recv_until(sock, wanted, timeout_s=15.0):
    got = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            msg = sock.recv(4096).decode()
        except TimeoutError:
            break
        got.append(msg)
        if msg.split("\n")[0] == wanted:
            return got
    raise AssertionError(f"no {wanted!r}; got {got}")


def start(tmp_path, notify_path, profile="hotline-5s"):
    config = tmp_path / "station.toml"
    config.write_text(CONFIG.format(profile=profile, state=tmp_path / "state"))
    env = {**os.environ, "NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "1000000", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(config)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, config


def test_sigterm_sends_stopping_publishes_offline_and_exits_0(tmp_path, notify):
    path, sock = notify
    proc, _ = start(tmp_path, path)
    try:
        recv_until(sock, "READY=1")
        recv_until(sock, "WATCHDOG=1", timeout_s=3)  # WatchdogSec=1 s: pings every 0.25 s
        proc.send_signal(signal.SIGTERM)
        recv_until(sock, "STOPPING=1", timeout_s=5)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["type"] == "station.online" and events[-1]["type"] == "station.offline"
    assert all(e["station"] == "desk-7" for e in events)
    assert "[desk-7]" in err and "SIGTERM" in err  # journal lines carry the station id


def test_sighup_reloads_the_profile_without_a_restart(tmp_path, notify):
    path, sock = notify
    proc, config = start(tmp_path, path)
    try:
        recv_until(sock, "READY=1")
        config.write_text(config.read_text().replace("hotline-5s", "service-2s"))
        proc.send_signal(signal.SIGHUP)
        got = recv_until(sock, "READY=1", timeout_s=5)
        assert "RELOADING=1" in got
        # A broken config is refused and the running one kept.
        config.write_text("[station\n")
        proc.send_signal(signal.SIGHUP)
        recv_until(sock, "READY=1", timeout_s=5)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "profile service-2s" in err and "reload failed" in err
    assert json.loads(out.splitlines()[-1])["profile"] == "service-2s"


def test_sigterm_with_a_broker_publishes_offline_and_flushes_the_outbox(tmp_path, notify, mqtt_broker):
    from fixtures_mqtt import Collector

    path, sock = notify
    collector = Collector(mqtt_broker)
    try:
        proc, config = start(tmp_path, path)
        proc.kill()
        proc.wait()
        config.write_text(config.read_text() + f'[mqtt]\nbrokers = ["{mqtt_broker.url}"]\n')
        env = {**os.environ, "NOTIFY_SOCKET": path, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(config)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            recv_until(sock, "READY=1")
            assert collector.wait_for(lambda c: any(e["type"] == "station.online" for e in c.payloads()), 10)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        assert collector.wait_for(lambda c: any(e["type"] == "station.offline" for e in c.payloads()), 5)
        printed = [json.loads(line)["seq"] for line in out.splitlines()]
        published = sorted(e["seq"] for e in collector.payloads() if e["station"] == "desk-7")
        assert published == printed, "every event reached the broker before the process exited"
        assert collector.wait_for(
            lambda c: any(
                json.loads(p).get("status", json.loads(p).get("state")) == "offline"
                for t, p, _r in c.messages
                if t.endswith("/status")
            ),
            5,
        )
    finally:
        collector.close()
