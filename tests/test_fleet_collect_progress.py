"""`headset-fleet collect` prints its progress (received/stored/rejected per interval) to stderr
while it runs, against a real Mosquitto."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from fixtures_fleet import FLEET
from fixtures_mqtt import wait_until

from firmware.protocol.envelope import EventFactory, to_json
from headset_fleet.store import open_store

pytestmark = pytest.mark.integration
LINE = re.compile(
    r"^collect: \d+ s: received (\d+), stored (\d+) \(\d+/s\), duplicates (\d+), rejected (\d+); "
    r"total stored (\d+)"
)


def _publish(url_port: int, payloads: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="progress-pub")
    client.connect("127.0.0.1", url_port)
    client.loop_start()
    try:
        for topic, payload in payloads:
            client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_collect_prints_progress_while_it_runs(fleet_broker, tmp_path):
    db = f"sqlite:///{tmp_path / 'events.db'}"
    proc = subprocess.Popen(
        [
            *FLEET,
            "collect",
            "--broker",
            fleet_broker.url,
            "--db",
            db,
            "--client-id",
            "cli-progress",
            "--progress-s",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        assert wait_until(lambda: "cli-progress" in fleet_broker.log(), 10)
        time.sleep(0.3)  # SUBACK
        factory = EventFactory("st-1", time.time())
        payloads = [
            ("hs/sh/st-1/event", to_json(factory.make("hook", i * 0.1, None, state="off")).encode()) for i in range(20)
        ]
        payloads.append(("hs/sh/st-1/event", b"not json"))
        _publish(fleet_broker.port, payloads)
        # two lines after the last event: the interval that stored them, then a quiet one
        assert wait_until(
            lambda: sum(1 for x in list(lines) if (m := LINE.match(x)) and m.group(5) == "20") >= 2, 15
        ), lines
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        reader.join(5)
    assert proc.returncode == 0
    progress = [LINE.match(x) for x in lines if LINE.match(x)]
    assert len(progress) >= 2 and progress[-1].group(1) == progress[-1].group(2) == "0"
    assert sum(int(m.group(1)) for m in progress) >= 21  # every interval's counts add up
    assert sum(int(m.group(2)) for m in progress) == 20 and sum(int(m.group(4)) for m in progress) == 1
    with open_store(db) as store:
        assert store.count() == 20
    assert "stored 20" in out


def test_bad_progress_interval_is_one_line(tmp_path):
    proc = subprocess.run(
        [
            *FLEET,
            "collect",
            "--broker",
            "mqtt://127.0.0.1:1",
            "--db",
            f"sqlite:///{tmp_path / 'e.db'}",
            "--progress-s",
            "nan",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--progress-s" in proc.stderr
    assert not (tmp_path / "e.db").exists()
