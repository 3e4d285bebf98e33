"""dead-air: say_wait at dead_air_s, say_busy at dead_air_busy_s after the true end of the
last speech; dead_air event with the duration when the gap ends."""

import pytest
from fixtures_station import ONSET_S, answered

TOL_S = 1e-3


def test_dead_air_cues_and_event():
    h = answered("outbound-10086")
    h.speech("tx", 0.5, 2.0)
    h.speech("rx", 2.5, 4.0)
    h.advance(15.0)
    cues = h.cues()
    assert (9.0, "say_wait") in cues and (14.0, "say_busy") in cues
    h.speech("tx", 16.0, 18.0)
    d = h.one("dead_air")
    assert d["t"] == pytest.approx(16.0 + ONSET_S, abs=TOL_S) and d["duration_s"] == pytest.approx(12.0)
    assert h.station.state["cue"] == "on_call"
    h.on(30.0)
    assert h.one("call.end")["dead_air_s"] >= 12.0


def test_short_gaps_are_not_dead_air():
    h = answered("outbound-10086")
    h.speech("tx", 0.5, 2.0)
    h.speech("rx", 2.5, 4.0)
    h.speech("tx", 7.0, 9.0)
    h.speech("rx", 10.0, 12.0)
    h.on(14.0)
    assert not h.of("dead_air") and h.one("call.end")["dead_air_s"] == 0


def test_no_dead_air_before_the_customer_spoke_or_on_hold():
    h = answered("outbound-10086")
    h.advance(20.0)  # nobody spoke yet
    assert not h.of("dead_air") and not [c for c in h.cues() if c[1] == "say_wait"]
    h.speech("tx", 20.0, 21.0)
    h.speech("rx", 21.5, 23.0)
    h.input(24.0, "mute", True)
    h.advance(40.0)
    assert not [c for c in h.cues() if c[1] == "say_wait"]
    h.input(40.0, "mute", False)  # the gap restarts at the end of the hold
    h.advance(46.0)
    assert (45.0, "say_wait") in h.cues()


def test_closing_pause_before_hanging_up_is_not_dead_air():
    h = answered("hotline-5s")
    h.speech("tx", 0.5, 2.0)
    h.speech("rx", 2.5, 4.0)
    h.speech("tx", 4.5, 6.0)  # goodbye
    h.on(11.5)  # 5.5 s later: the required 5 s pause, plus a little
    assert not h.of("dead_air") and h.violations() == []


def test_long_silence_then_hang_up_counts_beyond_the_closing_pause():
    h = answered("hotline-5s")
    h.speech("tx", 0.5, 2.0)
    h.speech("rx", 2.5, 4.0)
    h.on(24.0)  # 20 s of silence, 5 s of it the closing pause
    assert h.one("dead_air")["duration_s"] == pytest.approx(15.0)
    assert h.one("call.end")["dead_air_s"] == pytest.approx(15.0)


def test_silence_after_the_agent_spoke_is_the_customers_turn():
    h = answered("outbound-10086")
    h.speech("tx", 0.5, 2.0)
    h.speech("rx", 2.5, 4.0)
    h.speech("tx", 4.5, 6.0)  # the agent asks a question; the customer thinks
    h.advance(20.0)
    assert not [c for c in h.cues() if c[1] in ("say_wait", "say_busy")]
    h.speech("rx", 20.0, 21.0)
    assert not h.of("dead_air")
