"""Fleet monitor: the pure folding model, sorting, and `monitor --json` against a real broker."""

from __future__ import annotations

import json
import subprocess

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headset_fleet.errors import FleetInputError
from headset_fleet.monitor import fold, table_rows
from fixtures_fleet import FLEET


def j(obj) -> bytes:
    return json.dumps(obj).encode()


def test_fold_status_state_and_events():
    fleet: dict = {}
    fold(fleet, "hs/sh/st-1/status", j({"status": "online", "bdSeq": 3}), 100.0)
    fold(
        fleet,
        "hs/sh/st-1/state",
        j(
            {
                "call": "c1",
                "phase": "conversation",
                "on_hold": True,
                "hold_s": 12.0,
                "cue": "hold",
                "line": {"rx": "ok", "tx": None},
                "faults": {},
            }
        ),
        100.0,
    )
    row = table_rows(fleet, 110.0)[0]
    assert row["status"] == "online" and row["on_call"] and row["on_hold"]
    assert row["hold_s"] == pytest.approx(22.0)
    assert row["cue"] == "hold" and row["line"] == {"rx": "ok"}

    fold(fleet, "hs/sh/st-1/event", j({"type": "hold.end", "ts": "2026-11-22T00:00:00Z"}), 111.0)
    fold(fleet, "hs/sh/st-1/event", j({"type": "line", "channel": "rx", "condition": "noisy"}), 111.0)
    fold(fleet, "hs/sh/st-1/event", j({"type": "fault", "component": "audio", "detail": "stalled"}), 112.0)
    fold(fleet, "hs/sh/st-1/event", j({"type": "cue", "cue": "thank_waiting"}), 112.0)
    fold(fleet, "hs/sh/st-1/telemetry", j({"outbox_depth": 7}), 112.0)
    row = table_rows(fleet, 113.0)[0]
    assert not row["on_hold"] and row["hold_s"] == 0
    assert row["line"]["rx"] == "noisy" and row["faults"] == {"audio": "stalled"}
    assert row["cue"] == "thank_waiting" and row["outbox_depth"] == 7

    fold(fleet, "hs/sh/st-1/event", j({"type": "fault.cleared", "component": "audio"}), 114.0)
    fold(fleet, "hs/sh/st-1/event", j({"type": "call.end", "call": "c1"}), 114.0)
    row = table_rows(fleet, 115.0)[0]
    assert row["faults"] == {} and not row["on_call"]


def test_hold_start_event_starts_the_timer_from_its_timestamp():
    fleet: dict = {}
    fold(fleet, "hs/sh/st-1/event", j({"type": "hold.start", "ts": "2026-11-22T00:00:00.000Z"}), 0.0)
    start = 1795305600.0  # 2026-11-22T00:00:00Z
    assert table_rows(fleet, start + 61.5)[0]["hold_s"] == pytest.approx(61.5)


def test_stale_will_is_ignored_and_plain_status_accepted():
    fleet: dict = {}
    fold(fleet, "hs/sh/st-1/status", j({"status": "online", "bdSeq": 5}), 1.0)
    fold(fleet, "hs/sh/st-1/status", j({"status": "offline", "bdSeq": 4, "reason": "will"}), 2.0)
    assert table_rows(fleet, 3.0)[0]["status"] == "online"
    fold(fleet, "hs/sh/st-1/status", j({"status": "offline", "bdSeq": 5, "boot_id": "old", "reason": "will"}), 3.5)
    assert table_rows(fleet, 3.6)[0]["status"] == "online"  # same bdSeq, earlier boot
    fold(fleet, "hs/sh/st-1/status", j({"status": "offline", "bdSeq": 5, "reason": "will"}), 4.0)
    assert table_rows(fleet, 5.0)[0]["status"] == "offline"
    fold(fleet, "hs/sh/st-2/status", b"online", 1.0)
    fold(fleet, "other/topic", b"x", 1.0)
    fold(fleet, "hs/sh/st-3/state", b"", 1.0)  # cleared retained topic
    assert [r["station"] for r in table_rows(fleet, 5.0)] == ["st-1", "st-2"]


def test_sorting():
    fleet: dict = {}
    fold(fleet, "hs/b/st-1/state", j({"on_hold": True, "hold_s": 5}), 0.0)
    fold(fleet, "hs/a/st-2/state", j({"on_hold": True, "hold_s": 50}), 0.0)
    fold(fleet, "hs/a/st-3/state", j({"faults": {"audio": "x", "gpio": "y"}}), 0.0)
    fold(fleet, "hs/a/st-3/status", b"offline", 0.0)
    fold(fleet, "hs/a/st-2/status", b"online", 0.0)
    names = lambda key: [r["station"] for r in table_rows(fleet, 1.0, key)]
    assert names("station") == ["st-1", "st-2", "st-3"]
    assert names("site") == ["st-2", "st-3", "st-1"]
    assert names("hold")[0] == "st-2"
    assert names("faults")[0] == "st-3"
    assert names("status")[-1] == "st-2"
    with pytest.raises(FleetInputError):
        table_rows(fleet, 1.0, "colour")


def test_monitor_json_reads_retained_state_from_a_real_broker(fleet_broker):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="station-sim")
    c.connect("127.0.0.1", fleet_broker.port)
    c.loop_start()
    for sid in ("st-1", "st-2"):
        c.publish(f"hs/sh/{sid}/status", j({"status": "online", "bdSeq": 1}), qos=1, retain=True).wait_for_publish(5)
    c.publish(
        "hs/sh/st-2/state",
        j({"call": "c9", "on_hold": True, "hold_s": 70, "cue": "hold_over", "line": {"rx": "low"}, "faults": {}}),
        qos=1,
        retain=True,
    ).wait_for_publish(5)
    c.publish("hs/bj/st-9/status", j({"status": "offline", "bdSeq": 1}), qos=1, retain=True).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()
    proc = subprocess.run(
        [
            *FLEET,
            "monitor",
            "--broker",
            fleet_broker.url,
            "--json",
            "--sort",
            "hold",
            "--wait-s",
            "0.7",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["count"] == 3
    first = out["stations"][0]
    assert first["station"] == "st-2" and first["on_hold"] and first["hold_s"] >= 70 and first["cue"] == "hold_over"
    assert {r["station"]: r["status"] for r in out["stations"]} == {
        "st-1": "online",
        "st-2": "online",
        "st-9": "offline",
    }


def test_monitor_unreachable_broker_is_one_line():
    from fixtures_fleet import free_port

    proc = subprocess.run(
        [*FLEET, "monitor", "--broker", f"mqtt://127.0.0.1:{free_port()}", "--json"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "cannot connect" in proc.stderr, proc.stderr


def test_render_builds_a_table():
    from rich.console import Console

    from headset_fleet.monitor import render

    fleet: dict = {}
    fold(fleet, "hs/sh/st-1/state", j({"call": "c", "on_hold": True, "hold_s": 61, "faults": {"audio": "x"}}), 0.0)
    console = Console(record=True, width=120)
    console.print(render(table_rows(fleet, 0.0)))
    text = console.export_text()
    assert "st-1" in text and "1:01" in text and "audio" in text


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["hs/a/s1/status", "hs/a/s1/state", "hs/a/s1/event", "hs/b/s2/telemetry", "hs/x", "foo/a/b/c"]
            ),
            st.one_of(
                st.binary(max_size=40),
                st.dictionaries(
                    st.sampled_from(
                        [
                            "type",
                            "status",
                            "bdSeq",
                            "on_hold",
                            "hold_s",
                            "line",
                            "faults",
                            "cue",
                            "channel",
                            "component",
                            "ts",
                            "outbox_depth",
                            "call",
                        ]
                    ),
                    st.one_of(
                        st.none(),
                        st.booleans(),
                        st.integers(),
                        st.text(max_size=8),
                        st.lists(st.integers(), max_size=2),
                    ),
                    max_size=5,
                ).map(lambda d: json.dumps(d).encode()),
            ),
        ),
        max_size=12,
    )
)
def test_fold_never_raises_on_odd_payloads(messages):
    """A station (or anyone with write access) sending odd payloads cannot break the monitor."""
    fleet: dict = {}
    for topic, payload in messages:
        try:
            fold(fleet, topic, payload, 1000.0)
        except (TypeError, ValueError, AttributeError) as exc:
            raise AssertionError(f"{topic} {payload!r}: {exc}")
    json.dumps(table_rows(fleet, 1001.0))
