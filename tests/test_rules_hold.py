"""hold-limit: hold.start/warn/limit/end at exact instants, cues, violation, thanks."""

import pytest
from fixtures_station import answered

TOL_S = 1e-3


def test_hold_warn_limit_end():
    h = answered("hotline-5s")
    h.speech("tx", 0.5, 2.0)
    h.speech("rx", 2.5, 5.0)
    h.input(10.0, "mute", True)
    assert h.one("hold.start")["after_s"] == pytest.approx(10.0)
    h.advance(100.0)
    assert h.one("hold.warn")["t"] == pytest.approx(55.0, abs=TOL_S)
    assert h.one("hold.warn")["after_s"] == pytest.approx(45.0)
    limit = h.one("hold.limit")
    assert limit["t"] == pytest.approx(70.0, abs=TOL_S) and limit["after_s"] == pytest.approx(60.0)
    v = h.one("rule.violation", rule="hold-limit")
    assert v["t"] == pytest.approx(70.0, abs=TOL_S)
    cues = h.cues()
    assert (10.0, "hold") in cues and (55.0, "hold_warn") in cues and (70.0, "hold_over") in cues
    h.input(100.0, "mute", False)
    assert h.one("hold.end")["duration_s"] == pytest.approx(90.0)
    assert h.station.state["cue"] == "thank_waiting"
    h.advance(104.5)  # (dead air after the hold would cue say_wait at 105)
    assert h.station.state["cue"] == "on_call"
    end_cue = [c for c in h.cues() if c[1] == "on_call"][-1]
    assert end_cue[0] == pytest.approx(104.0, abs=TOL_S)


def test_short_hold_no_warning():
    h = answered("service-2s")
    h.input(5.0, "mute", True)
    h.input(20.0, "mute", False)
    h.advance(200.0)
    assert not h.of("hold.warn") and not h.of("hold.limit")
    assert "hold-limit" not in h.violations()


def test_two_holds_summary():
    h = answered("hotline-5s")
    h.input(5.0, "mute", True)
    h.input(15.0, "mute", False)
    h.input(20.0, "mute", True)
    h.input(45.0, "mute", False)
    h.on(60.0)
    end = h.one("call.end")
    assert end["hold_count"] == 2 and end["hold_s"] == pytest.approx(35.0)
    assert end["longest_hold_s"] == pytest.approx(25.0)


def test_profile_change_applies_to_next_hold():
    h = answered("hotline-5s")
    h.station.apply_profile(h.profile.with_overrides({"hold_warn_s": 10, "hold_limit_s": 20}))
    h.input(1.0, "mute", True)
    h.advance(30.0)
    assert h.one("hold.warn")["t"] == pytest.approx(11.0) and h.one("hold.limit")["t"] == pytest.approx(21.0)
