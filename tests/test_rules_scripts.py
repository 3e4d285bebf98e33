"""silent-call, low-volume and noisy-line scripts: step times exact (synthetic edges, 1 ms),
pause counted from SpeechEnd.end_t (not its detection), early hang-up violations."""

import pytest
from fixtures_station import answered

TOL_S = 1e-3


def steps(h):
    return [(e["t"], e["script"], e["step"], e["final"]) for e in h.of("script.step")]


@pytest.mark.parametrize(
    "profile,pause_s,n",
    [("hotline-5s", 5.0, 3), ("service-2s", 2.0, 4), ("outbound-10086", 2.0, 3), ("return-visit", 5.0, 3)],
)
def test_silent_call_full_script_agent_speaks_each_step(profile, pause_s, n):
    h = answered(profile)
    h.speech("tx", 0.5, 2.5)  # greeting
    t_end = 2.5
    for k in range(1, n + 1):
        due = t_end + pause_s
        h.advance(due + 0.5)
        got = h.of("script.step")
        assert got[-1]["step"] == k and got[-1]["t"] == pytest.approx(due, abs=TOL_S)
        assert got[-1]["script"] == "silent-call" and got[-1]["final"] == (k == n)
        assert got[-1]["prompt"] == h.profile.scripts["silent-call"][k - 1].as_dict()
        if k < n:
            h.speech("tx", due + 0.6, due + 2.0)
            t_end = due + 2.0
    assert h.station.state["cue"] == "hangup_ok"
    h.on(h.station.now + 0.1)
    assert "silent-call" not in h.violations()
    assert h.station.state["cue"] == "idle"


def test_pause_counts_from_true_end_not_detection():
    h = answered("hotline-5s")
    h.speech("tx", 0.5, 2.5)  # detected at 2.8
    h.advance(7.49)
    assert not h.of("script.step")
    h.advance(7.51)
    assert h.one("script.step")["t"] == pytest.approx(7.5, abs=TOL_S)
    # the amber pause light turned to speak exactly when 5 s had passed
    cues = h.cues()
    assert (2.8, "pause") in cues and (7.5, "speak") in cues


def test_steps_follow_each_other_when_agent_says_nothing():
    h = answered("hotline-5s")
    h.speech("tx", 0.5, 2.0)
    h.advance(30.0)
    assert steps(h) == [(7.0, "silent-call", 1, False), (12.0, "silent-call", 2, False), (17.0, "silent-call", 3, True)]


def test_customer_speech_ends_silent_call():
    h = answered("hotline-5s")
    h.speech("tx", 0.5, 2.0)
    h.advance(8.0)  # step 1 at 7.0
    h.speech("rx", 8.5, 10.0)
    h.advance(40.0)
    assert len(h.of("script.step")) == 1
    assert h.station.state["script"] is None
    h.on(40.0)
    assert "silent-call" not in h.violations()


def test_customer_who_answers_the_greeting_gets_no_script():
    h = answered("service-2s")
    h.speech("tx", 0.3, 1.5)
    h.speech("rx", 2.0, 4.0)
    h.advance(20.0)
    assert not h.of("script.step")


def test_hanging_up_before_final_step_is_a_violation():
    h = answered("hotline-5s")
    h.speech("tx", 0.5, 2.0)
    h.advance(13.0)  # steps 1 (7.0) and 2 (12.0)
    h.on(13.0)
    v = h.one("rule.violation", rule="silent-call")
    assert v["t"] == 13.0 and "step 2 of 3" in v["detail"]
    assert "silent-call" in h.one("call.end")["violations"]


def test_low_volume_script():
    h = answered("hotline-5s")
    h.speech("tx", 0.5, 2.0)
    h.speech("rx", 2.5, 4.0, level_dbfs=-50.0)  # too quiet; detected 4.3
    assert steps(h) == [(4.3, "low-volume", 1, False)]
    h.speech("tx", 4.5, 6.0)  # "please speak louder"
    h.speech("rx", 7.0, 8.0, level_dbfs=-52.0)  # still too quiet: the pause restarts at 8.0
    h.advance(20.0)
    assert steps(h)[1:] == [(13.0, "low-volume", 2, False), (18.0, "low-volume", 3, True)]
    h.on(24.0)
    assert "low-volume" not in h.violations()


def test_low_volume_ends_when_customer_is_heard():
    h = answered("service-2s")
    h.speech("tx", 0.5, 1.5)
    h.line(3.0, "rx", "low")
    assert steps(h) == [(3.0, "low-volume", 1, False)]
    h.speech("tx", 3.2, 4.5)
    h.speech("rx", 5.0, 6.0, level_dbfs=-25.0)
    h.advance(20.0)
    assert len(h.of("script.step")) == 1 and h.station.state["script"] is None


def test_noisy_line_script_and_early_hangup():
    h = answered("outbound-10086")
    h.speech("tx", 0.5, 1.5)
    h.speech("rx", 2.0, 3.0)
    h.line(4.0, "rx", "noisy", level=-30, noise=-33)
    assert steps(h) == [(4.0, "noisy-line", 1, False)]
    h.speech("tx", 4.2, 7.0)
    h.on(8.0)  # final step would be due at 9.0
    assert h.violations() == ["noisy-line", "hangup-pause"]


def test_noisy_line_does_not_wait_for_rx_vad():
    # On a noisy line the rx "speech" is mostly noise: the script runs on the agent's pauses.
    h = answered("hotline-5s")
    h.speech("tx", 0.5, 1.5)
    h.speech_start("rx", 2.0)
    h.line(3.0, "rx", "noisy", level=-30, noise=-33)
    assert steps(h) == [(3.0, "noisy-line", 1, False)]
    h.speech("tx", 3.5, 7.0)
    h.speech_end("rx", 2.0, 9.0)
    h.advance(13.0)
    assert steps(h)[-1] == (12.0, "noisy-line", 2, True)
    h.on(13.0)
    assert h.violations() == []  # the rx "speech" (noise) that ended at 9.0 does not count


def test_farend_hangup_ends_script_without_violation():
    h = answered("hotline-5s")
    h.speech("tx", 0.5, 2.0)
    h.advance(8.0)
    h.tone(9.0)
    h.on(10.0)
    assert h.violations() == []


def test_noisy_line_takes_over_from_low_volume():
    h = answered("hotline-5s")
    h.speech("tx", 0.5, 1.5)
    h.speech("rx", 2.0, 3.0, level_dbfs=-50.0)  # the noise looks like quiet speech first
    h.line(4.0, "rx", "noisy", level=-35, noise=-36)
    assert [s[1:3] for s in steps(h)] == [("low-volume", 1), ("noisy-line", 1)]
    h.speech("rx", 5.0, 6.0, level_dbfs=-50.0)  # on a noisy line: no new low-volume
    assert steps(h)[-1][1] == "noisy-line" and h.station.state["script"]["script"] == "noisy-line"
