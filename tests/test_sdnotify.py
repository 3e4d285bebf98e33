"""sd_notify against a unix datagram socket the test listens on, and the liveness-gated watchdog."""

import socket
import time

import pytest

from firmware.runtime.liveness import Heartbeat, WatchdogPinger
from firmware.runtime.sdnotify import SdNotify


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def messages(sock, timeout_s=0.2):
    out = []
    sock.settimeout(timeout_s)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except TimeoutError:
        return out


def test_protocol_messages(notify_socket):
    path, sock = notify_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"}
    with SdNotify(environ=env) as sd:
        assert "NOTIFY_SOCKET" not in env and "WATCHDOG_USEC" not in env  # children must not inherit
        assert sd.available and sd.watchdog_period() == 4.0
        sd.ready("up")
        sd.watchdog_ping()
        sd.status("audio fault:\n no data")
        sd.reloading()
        sd.stopping()
    assert messages(sock) == [
        "READY=1\nSTATUS=up",
        "WATCHDOG=1",
        "STATUS=audio fault: no data",
        "RELOADING=1",
        "STOPPING=1",
    ]


def test_abstract_socket_address():
    name = f"hs-test-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        with SdNotify(environ={"NOTIFY_SOCKET": "@" + name}) as sd:
            assert sd.ready()
        sock.settimeout(1)
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_without_systemd_everything_is_a_no_op():
    sd = SdNotify(environ={})
    assert not sd.available and sd.watchdog_period() is None
    assert sd.ready() is False and sd.watchdog_ping() is False
    sd.close()
    sd.close()


def test_watchdog_period_for_another_pid_is_ignored():
    assert SdNotify(environ={"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_period() is None


def test_watchdog_pings_only_while_every_loop_is_alive(notify_socket):
    path, sock = notify_socket
    sd = SdNotify(environ={"NOTIFY_SOCKET": path})
    audio, rules = Heartbeat("audio"), Heartbeat("rules")
    pinger = WatchdogPinger(sd, [audio, rules], period_s=0.4).start()
    try:
        for _ in range(5):  # both loops alive for 0.5 s
            audio.beat()
            rules.beat()
            time.sleep(0.1)
        alive = messages(sock, 0.05)
        assert alive.count("WATCHDOG=1") >= 3
        # The rules loop hangs; the audio loop carries on. Pings stop, systemd will restart us.
        t_hang = time.monotonic()
        while time.monotonic() - t_hang < 0.8:
            audio.beat()
            time.sleep(0.05)
        late = messages(sock, 0.05)
        assert late.count("WATCHDOG=1") <= 2  # only those sent before rules went stale (0.2 s)
        assert pinger.stale == "rules"
        assert messages(sock, 0.3) == []
    finally:
        pinger.stop()
        sd.close()
