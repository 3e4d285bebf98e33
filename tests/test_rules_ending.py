"""hangup-pause, far-end-gone, call-length and calling-hours."""

import pytest
from fixtures_station import Harness, answered


def conversation(h, end_t=10.0):
    h.off(0.0)
    h.speech("tx", 0.3, 2.0)
    h.speech("rx", 2.5, 6.0)
    h.speech("tx", 6.5, end_t)


def test_hanging_up_too_soon():
    h = Harness("hotline-5s").start()
    conversation(h)
    h.on(12.0)
    v = h.one("rule.violation", rule="hangup-pause")
    assert v["t"] == 12.0 and "2.0 s" in v["detail"]


def test_hanging_up_after_the_pause():
    h = Harness("hotline-5s").start()
    conversation(h)
    h.on(15.0)
    assert h.violations() == []


@pytest.mark.parametrize(
    "pause_s, detail",
    [
        (4.98, None),  # within one 30 ms frame of the 5 s pause: the end of speech is only known to a frame
        (4.97, None),
        (4.96, "hung up 4.96 s after the last speech (at least 5 s)"),  # never "5.0 s (at least 5 s)"
        (4.5, "hung up 4.5 s after the last speech (at least 5 s)"),
    ],
)
def test_hanging_up_at_the_pause_to_the_frame(pause_s, detail):
    h = Harness("hotline-5s").start()
    conversation(h)
    h.on(10.0 + pause_s)
    found = [e["detail"] for e in h.of("rule.violation", rule="hangup-pause")]
    assert found == ([detail] if detail else [])


def test_hanging_up_while_someone_talks():
    h = Harness("service-2s").start()
    conversation(h)
    h.speech_start("rx", 20.0)
    h.on(21.0)
    assert h.violations() == ["hangup-pause"]


def test_far_end_gone_excuses_the_pause():
    h = Harness("hotline-5s").start()
    conversation(h)
    h.tone(11.0)
    assert h.station.state["cue"] == "call_back"  # cut off before the call was wrapped up
    h.on(11.5)
    assert h.violations() == []
    assert h.station.state["cue"] == "idle"


def test_far_end_gone_after_the_final_script_step_needs_no_call_back():
    h = answered("service-2s")
    h.speech("tx", 0.3, 1.5)
    h.advance(10.0)  # silent call: all 4 steps by 9.5
    assert h.station.state["cue"] == "hangup_ok"
    h.tone(10.0)
    assert "call_back" not in [c for _, c in h.cues()]


def test_far_end_gone_before_anyone_spoke_needs_no_call_back():
    h = answered("outbound-10086")
    h.tone(3.0)
    assert h.one("farend.disconnect")["t"] == 3.0
    assert "call_back" not in [c for _, c in h.cues()]


def test_cut_off_mid_sentence_asks_for_a_call_back():
    h = Harness("hotline-5s").start()
    conversation(h)
    h.speech_start("rx", 12.0)
    h.tone(13.5)
    assert h.station.state["cue"] == "call_back"
    h.on(14.0)
    assert h.station.state["cue"] == "idle"


def test_return_visit_waits_for_the_customer():
    h = Harness("return-visit").start()
    conversation(h)
    h.on(20.0)
    assert h.one("rule.violation", rule="hangup-pause")["detail"] == "hung up before the customer did"
    h2 = Harness("return-visit").start()
    conversation(h2)
    h2.tone(14.0)
    h2.on(16.0)
    assert h2.violations() == []


def test_call_length_wrap_up():
    h = Harness("return-visit").start()
    conversation(h)
    h.speech("rx", 100.0, 178.0)  # keep the line busy so wrap_up is the cue shown
    h.advance(180.5)
    assert (180.0, "wrap_up") in h.cues()
    h2 = Harness("hotline-5s").start()
    conversation(h2)
    h2.advance(400.0)
    assert "wrap_up" not in [c for _, c in h2.cues()]


@pytest.mark.parametrize("offset_h,inside", [(8, True), (0, True), (2, False), (-3, False)])
def test_calling_hours(offset_h, inside):
    # EPOCH_S is 11:06:40 UTC: 19:06 at +8 and 11:06 at +0 are inside the windows.
    h = Harness("return-visit")
    h.station.set_local_utc_offset(offset_h * 3600)
    h.start()
    h.off(0.0)
    assert ("calling-hours" in h.violations()) == (not inside)
    assert (h.station.state["cue"] == "outside_hours") == (not inside)


def test_calling_hours_system_local_time_does_not_crash():
    h = Harness("return-visit")
    h.station.set_local_utc_offset(None)
    h.start()
    h.off(0.0)
    h.on(5.0)
    assert h.one("call.end")


def test_return_visit_script_hang_up_step_allows_hanging_up_first():
    h = answered("return-visit")
    h.speech("tx", 0.3, 2.0)
    h.speech("rx", 2.5, 4.0, level_dbfs=-55.0)  # too quiet: low-volume script
    h.advance(30.0)  # the agent says nothing: steps every 5 s
    assert h.station.state["cue"] == "hangup_ok"
    h.on(30.0)
    assert h.violations() == []
