"""answer-rings and greet-in-time (synthetic edges; times exact to 1 ms)."""

import pytest
from fixtures_station import ONSET_S, Harness, answered


def ring(h, n, period_s=4.0, on_s=1.0):
    for k in range(n):
        h.input(k * period_s, "ring", True)
        h.input(k * period_s + on_s, "ring", False)


def test_answer_within_three_rings_is_fine():
    h = Harness("service-2s").start()
    ring(h, 3)
    h.off(10.0)
    h.speech("tx", 10.3, 11.5)
    assert h.one("call.start")["rings"] == 3 and h.violations() == []


def test_fourth_ring_needs_an_apology():
    h = Harness("service-2s").start()
    ring(h, 4)
    h.off(13.0)
    v = h.one("rule.violation", rule="answer-rings")
    assert v["t"] == 13.0 and "4 rings" in v["detail"]
    assert (13.0, "apologize_wait") in h.cues()
    h.speech("tx", 13.2, 14.0)
    h.advance(20.0)
    # brief: off again after apologize_s (5 s)
    assert h.station.state["cue"] != "apologize_wait"
    assert [c for c in h.cues() if c[0] == pytest.approx(18.0, abs=1e-3)]


def test_greeting_in_time():
    h = answered("hotline-5s")
    assert h.station.state["cue"] == "greet"
    h.speech("tx", 1.9, 3.0)  # began before the 2 s deadline, detected after it
    h.advance(10.0)
    assert "greet-in-time" not in h.violations()
    assert (1.9 + ONSET_S, "on_call") in h.cues()


def test_no_greeting_is_a_violation_at_the_deadline():
    h = answered("hotline-5s")
    h.advance(5.0)
    v = h.one("rule.violation", rule="greet-in-time")
    # the check waits one VAD onset so a greeting that started just in time is not missed
    assert v["t"] == pytest.approx(2.0 + ONSET_S, abs=1e-3)
    assert h.station.state["cue"] == "greet"
    h.speech("tx", 6.0, 7.0)
    assert len(h.of("rule.violation", rule="greet-in-time")) == 1
    assert h.station.state["cue"] != "greet"


def test_late_greeting_detected_before_the_check():
    h = answered("hotline-5s")
    h.speech_start("tx", 2.05)  # detected 2.14, after the 2.09 check
    assert h.one("rule.violation", rule="greet-in-time")["t"] == pytest.approx(2.09, abs=1e-3)


def test_outbound_has_no_greeting_deadline():
    h = answered("outbound-10086")
    h.advance(10.0)
    assert "greet-in-time" not in h.violations()
