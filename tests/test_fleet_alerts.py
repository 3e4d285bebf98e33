"""Alert rules (TOML), one alert per occurrence until it clears, and the webhook's retries
against a real HTTP receiver that is down for 10 s."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fixtures_board import Receiver
from fixtures_mqtt import free_port, wait_until

from headset_fleet.alerts import AlertEngine, AlertRules, AlertRulesError, WebhookSender, load_rules
from headset_fleet.monitor import fold

ROOT = Path(__file__).resolve().parent.parent
T0 = 1795305600.0


def j(obj) -> bytes:
    return json.dumps(obj).encode()


def iso(ts_s: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts_s, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_the_example_rules_file_loads():
    rules = load_rules(str(ROOT / "config" / "alerts.example.toml"))
    assert rules.hold_limit_s == 60 and rules.hold_warn_s == 45 and rules.mqtt_topic == "hs/_fleet/alert"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[hold]\nlimit_s = nan\n", "hold.limit_s: nan is not between"),
        ("[hold]\nlimit_s = -1\n", "hold.limit_s: -1 is not between"),
        ("[hold]\nlimit_s = 30\nwarn_s = 40\n", "hold.warn_s: 40 is past hold.limit_s 30"),
        ("[hold]\nlimt_s = 30\n", "hold.limt_s: unknown key"),
        ("[sms]\nto = 1\n", "[sms]: unknown section"),
        ("[violations]\nmax_count = 2.5\n", "violations.max_count: 2.5 is not an integer"),
        ('[webhook]\nurl = "ftp://x"\n', "webhook.url: 'ftp://x' is not an http"),
        ('[mqtt]\ntopic = "hs/#"\n', "mqtt.topic"),
        ("[board]\nsound = 1\n", "board.sound: 1 is not true or false"),
        ("hold = [", "not TOML"),
    ],
)
def test_bad_rules_are_one_line_naming_file_and_key(tmp_path, text, message):
    path = tmp_path / "alerts.toml"
    path.write_text(text)
    with pytest.raises(AlertRulesError) as info:
        load_rules(str(path))
    assert message in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == 78


def test_one_alert_per_condition_until_it_clears():
    engine = AlertEngine(
        AlertRules(hold_limit_s=60, dead_air_after_s=10, violations_max_count=3, violations_window_s=60)
    )
    fleet: dict = {}
    fold(fleet, "hs/sh/st-1/status", j({"status": "online", "bdSeq": 1, "boot_id": "a", "ts": iso(T0)}), T0)
    fold(fleet, "hs/sh/st-1/event", j({"type": "call.start", "call": "c1", "ts": iso(T0 + 1)}), T0 + 1)
    fold(fleet, "hs/sh/st-1/event", j({"type": "hold.start", "call": "c1", "ts": iso(T0 + 2)}), T0 + 2)
    assert engine.evaluate(fleet, T0 + 30) == []
    raised = engine.evaluate(fleet, T0 + 62)
    assert [(a["rule"], a["state"]) for a in raised] == [("hold_over", "raised")]
    for t in range(63, 90):  # still over the limit: nothing new
        assert engine.evaluate(fleet, T0 + t) == []
    fold(fleet, "hs/sh/st-1/event", j({"type": "hold.end", "call": "c1", "ts": iso(T0 + 90)}), T0 + 90)
    cleared = engine.evaluate(fleet, T0 + 90)
    assert [(a["rule"], a["state"], a["id"]) for a in cleared] == [("hold_over", "cleared", raised[0]["id"])]
    # A second hold over the limit is a new occurrence with a new id.
    fold(fleet, "hs/sh/st-1/event", j({"type": "hold.start", "call": "c1", "ts": iso(T0 + 100)}), T0 + 100)
    again = engine.evaluate(fleet, T0 + 161)
    assert len(again) == 1 and again[0]["id"] != raised[0]["id"]

    # Offline during the call, a fault, dead air, violations.
    fold(fleet, "hs/sh/st-2/status", j({"status": "online", "bdSeq": 1, "boot_id": "b", "ts": iso(T0)}), T0)
    fold(fleet, "hs/sh/st-2/event", j({"type": "call.start", "call": "c2", "ts": iso(T0 + 150)}), T0 + 150)
    fold(
        fleet,
        "hs/sh/st-2/event",
        j({"type": "fault", "component": "audio", "detail": "stalled", "ts": iso(T0 + 150)}),
        T0 + 150,
    )
    fold(fleet, "hs/sh/st-2/event", j({"type": "cue", "cue": "say_wait", "ts": iso(T0 + 150)}), T0 + 150)
    for k in range(3):
        fold(
            fleet,
            "hs/sh/st-2/event",
            j({"type": "rule.violation", "rule": "R5", "ts": iso(T0 + 151 + k)}),
            T0 + 151 + k,
        )
    rules = sorted(a["rule"] for a in engine.evaluate(fleet, T0 + 162))
    assert rules == ["dead_air", "fault", "violations"]
    fold(fleet, "hs/sh/st-2/status", j({"status": "offline", "bdSeq": 1, "boot_id": "b", "reason": "will"}), T0 + 163)
    changes = sorted((a["rule"], a["state"]) for a in engine.evaluate(fleet, T0 + 163))
    assert changes == [("dead_air", "cleared"), ("offline_in_call", "raised")]
    assert engine.evaluate(fleet, T0 + 170) == []
    assert sorted(a["rule"] for a in engine.evaluate(fleet, T0 + 230)) == ["violations"]  # window passed: cleared


@pytest.mark.integration  # a real HTTP receiver, 10 s down
def test_webhook_delivers_each_alert_once_and_survives_a_receiver_down_for_10_s():
    port = free_port()
    receiver = Receiver(port)
    sender = WebhookSender(f"http://127.0.0.1:{port}/hook", timeout_s=2.0, backoff_max_s=4.0, give_up_after_s=120)
    try:
        alerts = [{"id": f"a{i}", "state": "raised", "rule": "hold_over"} for i in range(3)]
        for alert in alerts:
            sender.send(alert)
        time.sleep(10.0)  # the receiver is down: connection refused, retried with back-off
        assert receiver.bodies == [] and sender.pending == 3
        receiver.start()
        assert wait_until(lambda: len(receiver.bodies) >= 3, timeout_s=15)
        time.sleep(1.0)
        assert sorted(b["id"] for b in receiver.bodies) == ["a0", "a1", "a2"]  # each exactly once
        assert sender.delivered == 3 and sender.pending == 0
    finally:
        sender.stop()
        receiver.stop()


@pytest.mark.integration
def test_webhook_timeout_is_bounded_by_a_receiver_that_never_answers():
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never reads nor answers
    sender = WebhookSender(
        f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout_s=0.5, backoff_max_s=0.5, give_up_after_s=2.0
    )
    try:
        sender.send({"id": "x", "state": "raised"})
        assert wait_until(lambda: sender.given_up == 1, timeout_s=10)
        assert sender.delivered == 0
    finally:
        sender.stop()
        listener.close()
