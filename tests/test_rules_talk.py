"""no-interrupt (overtalk) and agent-volume (agent.loud)."""

import pytest
from fixtures_station import HANGOVER_S, answered

from firmware.analysis.edges import SpeechLevel, SpeechStart

TOL_S = 1e-3


def test_cut_in_while_customer_talks():
    h = answered("hotline-5s")
    h.speech("tx", 0.3, 1.0)
    h.speech_start("rx", 1.5)
    h.speech_start("tx", 3.0)  # customer has spoken 1.5 s
    h.speech_end("rx", 1.5, 5.0)
    o = h.one("overtalk")
    assert o["t"] == pytest.approx(3.0 + HANGOVER_S, abs=TOL_S) and o["duration_s"] == pytest.approx(1.5)
    assert (o["t"], "overtalk") in h.cues()
    h.speech_end("tx", 3.0, 6.0)
    h.on(20.0)
    assert h.one("call.end")["overtalk_count"] == 1


def test_quick_turn_is_not_a_cut_in():
    h = answered("hotline-5s")
    h.speech("tx", 0.3, 1.0)
    h.speech_start("rx", 1.5)
    h.speech_start("tx", 3.1)  # customer ended at 3.0, detected only at 3.3
    h.speech_end("rx", 1.5, 3.0)
    h.speech_end("tx", 3.1, 5.0)
    h.advance(10.0)
    assert not h.of("overtalk")


def test_backchannel_after_short_customer_speech_is_fine():
    h = answered("hotline-5s")
    h.speech_start("rx", 1.0)
    h.speech_start("tx", 1.3)  # only 0.3 s < overtalk_min_s
    h.speech_end("rx", 1.0, 3.0)
    assert not h.of("overtalk")


def test_agent_raising_voice():
    h = answered("hotline-5s")
    h.speech("tx", 0.3, 2.0, level_dbfs=-26.0)
    h.speech("rx", 2.5, 4.0)
    h.speech("tx", 4.5, 6.0, level_dbfs=-24.0)
    h.speech("rx", 6.5, 8.0)
    assert not h.of("agent.loud")
    h.speech("tx", 8.5, 10.0, level_dbfs=-12.0)
    loud = h.one("agent.loud")
    assert loud["t"] == pytest.approx(10.0 + HANGOVER_S, abs=TOL_S)
    assert loud["level_dbfs"] == -12.0 and loud["baseline_dbfs"] == pytest.approx(-25.1, abs=0.05)
    assert h.station.state["cue"] == "lower_voice"
    h.advance(14.0)
    assert h.station.state["cue"] != "lower_voice"


def test_agent_loud_while_still_talking():
    """SpeechLevel edges of a running utterance: agent.loud at the first loud one (the
    analyser sends them from 1 s into an utterance), the cue held while loud, the final
    duration in agent.loud.end; the loud utterance stays out of the baseline."""
    h = answered("hotline-5s")
    h.speech("tx", 0.3, 2.0, level_dbfs=-26.0)
    h.speech("rx", 2.5, 4.0)
    h.station.on_edge(SpeechStart("tx", 4.59, 4.5))
    h.station.on_edge(SpeechLevel("tx", 5.5, 4.5, -24.0, 1.0, 1.0))  # not loud yet
    assert not h.of("agent.loud")
    h.station.on_edge(SpeechLevel("tx", 6.0, 4.5, -13.0, 1.5, 1.0))
    loud = h.one("agent.loud")
    assert loud["t"] == 6.0 and loud["level_dbfs"] == -13.0 and loud["baseline_dbfs"] == -26.0
    assert loud["duration_s"] == 1.5
    for k in range(1, 9):  # still loud: the cue stays
        h.station.on_edge(SpeechLevel("tx", 6.0 + 0.5 * k, 4.5, -13.0, 1.5 + 0.5 * k, 1.0))
    assert h.station.state["cue"] == "lower_voice"
    h.speech_end("tx", 4.5, 10.5, level_dbfs=-14.0)
    end = h.one("agent.loud.end")
    assert end["t"] == pytest.approx(10.5 + HANGOVER_S) and end["duration_s"] == pytest.approx(6.0)
    assert len(h.of("agent.loud")) == 1
    h.speech("tx", 12.0, 13.0, level_dbfs=-25.0)
    h.speech("tx", 14.0, 15.0, level_dbfs=-14.0)  # the baseline is still about -26 dBFS
    assert len(h.of("agent.loud")) == 2
