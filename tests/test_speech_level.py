"""SpeechLevel: the analyser's report of an utterance still running (for cues that must come
while someone is still talking), on recorded speech, whatever the block size."""

import numpy as np
import pytest

from firmware.analysis.analyzer import ChannelAnalyzer
from firmware.analysis.edges import SpeechEnd, SpeechLevel, SpeechStart
from firmware.config.settings import AnalysisSettings
from firmware.sim import speech

RATE = 16000


def edges_of(pcm, block_s):
    a = ChannelAnalyzer("tx", RATE, 30, AnalysisSettings(), -40.0, -45.0, 10.0)
    step = round(block_s * RATE)
    out = []
    for i in range(0, len(pcm), step):
        out += a.process(i / RATE, pcm[i : i + step])
    return out


@pytest.fixture(scope="module")
def talk():
    """1 s of line noise, 4 s of continuous speech at -20 dBFS, 2 s of line noise."""
    x = np.zeros(7 * RATE)
    p = speech.scale_to(speech.load_prompt("demo-congrats", RATE)[: 4 * RATE], -20.0, RATE)
    x[RATE : RATE + len(p)] += p
    x += speech.noise("pink", len(x), RATE, seed=3, level_dbfs=-66.0)
    return speech.to_int16(x)


def test_levels_every_half_second_from_one_second_on(talk):
    edges = edges_of(talk, 1.0)
    (start,) = [e for e in edges if isinstance(e, SpeechStart)]
    (end,) = [e for e in edges if isinstance(e, SpeechEnd)]
    levels = [e for e in edges if isinstance(e, SpeechLevel)]
    assert levels, "a 4 s utterance reports its level while it runs"
    # 33 frames of 30 ms (1 s rounded to frames), then every 17 frames (0.5 s)
    assert [e.duration_s for e in levels] == pytest.approx([0.99 + 0.51 * k for k in range(len(levels))])
    for e in levels:
        assert e.start_t == start.start_t and e.t == pytest.approx(e.start_t + e.duration_s)
        assert e.window_s == pytest.approx(0.99)
        assert e.active_level_dbfs == pytest.approx(-20.0, abs=4.0)
        assert start.t < e.t < end.t
    assert levels[-1].t > end.end_t - 0.6


def test_same_levels_in_live_blocks(talk):
    assert edges_of(talk, 0.03) == edges_of(talk, 1.0)
