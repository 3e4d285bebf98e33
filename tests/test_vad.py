"""Speech detection: decimation, onset/hangover smoothing, and the analyser's edge contract."""

import numpy as np
import pytest
import webrtcvad
from fixtures_corpus import analyse, f1, predicted_frames, scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.analysis.analyzer import ChannelAnalyzer
from firmware.analysis.edges import LineChange, SpeechEnd, SpeechStart
from firmware.analysis.levels import rms_dbfs
from firmware.analysis.vad import Decimator, Smoother, vad_rate_for
from firmware.config.settings import AnalysisSettings
from firmware.errors import AudioFormatError
from firmware.sim import speech as sp


@pytest.mark.parametrize("factor", [2, 3])
def test_decimator_keeps_the_voice_band_and_removes_what_would_alias(factor):
    rate = 16000 * factor

    def through(freq):
        t = np.arange(rate) / rate
        x = (10000 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        d = Decimator(factor)
        y = np.concatenate([d.process(x[i : i + 960]) for i in range(0, rate, 960)])
        assert len(y) == rate // factor
        return rms_dbfs(y[200:]) - rms_dbfs(x)

    assert through(300) == pytest.approx(0.0, abs=0.2)
    assert through(1000) == pytest.approx(0.0, abs=0.3)
    assert through(3000) > -1.5
    assert through(14000) < -35  # would fold to 2 kHz, inside what the VAD listens to


def test_decimator_output_does_not_depend_on_block_size():
    x = np.random.default_rng(1).standard_normal(48000 * 2).astype(np.float32) * 1000
    a = Decimator(3).process(x)
    d = Decimator(3)
    b = np.concatenate([d.process(x[i : i + 1440]) for i in range(0, len(x), 1440)])
    assert np.allclose(a, b, atol=1e-3)


def test_vad_rate_decimates_only_the_expensive_rates():
    assert [vad_rate_for(r) for r in (8000, 16000, 32000, 48000)] == [8000, 16000, 16000, 16000]


def test_smoother_onset_and_hangover_in_frames():
    s = Smoother(onset_frames=3, hangover_frames=4)
    raw = [0, 2, 2, 0, 2, 2, 2, 2, 0, 2, 0, 0, 0, 0, 0, 2]
    flags = []
    out = s.run_block(100, raw, [1.0] * len(raw), flags)
    # The 2-frame burst is ignored; the run at 4..7 starts at 6 (third frame), true start 4.
    assert out[0] == ("start", 106, 104)
    # Last speech at 9; four non-speech frames 10..13 end it at 13.
    assert out[1][:4] == ("end", 113, 104, 109)
    assert len(out) == 2 and not s.speaking
    assert flags == [False] * 6 + [True] * 7 + [False] * 3


def test_weak_evidence_continues_but_never_starts_an_utterance():
    s = Smoother(onset_frames=2, hangover_frames=2)
    out = s.run_block(0, [1, 1, 1, 1, 2, 2, 1, 0, 1, 1, 0, 0, 1, 1], [1.0] * 14, [])
    assert out[0] == ("start", 5, 4)
    assert out[1][:4] == ("end", 11, 4, 9)  # weak frames 6, 8, 9 kept it going
    assert len(out) == 2


def test_smoother_state_carries_across_blocks():
    raw = [0, 2, 2, 2, 1, 0, 0, 2, 0, 0, 0, 0, 2, 2]
    whole = Smoother(2, 3).run_block(0, raw, [1.0] * len(raw), [])
    s, parts = Smoother(2, 3), []
    for i in range(0, len(raw), 3):
        parts += s.run_block(i, raw[i : i + 3], [1.0] * len(raw[i : i + 3]), [])
    assert parts == whole


@pytest.mark.parametrize("rate", [8000, 16000, 32000, 48000])
def test_speech_found_at_every_capture_rate(rate):
    sc = scenario(-25.0, 20.0, "white", rate)
    pred = predicted_frames(analyse(sc.pcm, rate), len(sc.truth_frames))
    assert f1(pred, sc.truth_frames) >= 0.9


def test_edges_follow_the_contract_timing():
    sc = scenario(-25.0, None, "white")
    st_ = AnalysisSettings(onset_ms=90, hangover_ms=300)
    edges = analyse(sc.pcm, 16000, block_s=0.06, settings=st_)
    starts = [e for e in edges if isinstance(e, SpeechStart)]
    ends = [e for e in edges if isinstance(e, SpeechEnd)]
    assert len(starts) >= 5 and len(ends) >= len(starts) - 1
    for s in starts:
        assert s.t - s.start_t == pytest.approx(0.09, abs=1e-6)
    for e in ends:
        assert e.t - e.end_t == pytest.approx(0.30, abs=1e-6)
        assert e.duration_s > 0.09 and -27.5 < e.active_level_dbfs < -22.5
    # Starts and ends alternate, and the first utterance starts with the first prompt.
    kinds = [type(e) for e in edges if isinstance(e, (SpeechStart, SpeechEnd))]
    assert all(a is not b for a, b in zip(kinds, kinds[1:]))
    assert starts[0].start_t == pytest.approx(sc.speech_span_s[0], abs=0.1)
    ts = [e.t for e in edges]
    assert ts == sorted(ts)


@pytest.mark.parametrize("level, aggressiveness", [(-60.0, 2), (-55.0, 3)])
def test_quiet_speech_found_where_webrtcvad_alone_misses_it(level, aggressiveness):
    sc = scenario(level, 20.0, "white")
    vad = webrtcvad.Vad(aggressiveness)
    n = 480
    raw = np.array([vad.is_speech(sc.pcm[i : i + n].tobytes(), 16000) for i in range(0, len(sc.pcm) - n + 1, n)])
    truth = sc.truth_frames[: len(raw)]
    assert raw[truth].mean() < 0.3  # webrtcvad misses most of it...
    edges = analyse(sc.pcm, 16000, settings=AnalysisSettings(vad_aggressiveness=aggressiveness))
    pred = predicted_frames(edges, len(sc.truth_frames))
    assert f1(pred, sc.truth_frames) >= 0.88  # ...the analyser does not


@pytest.mark.parametrize("kind", ["babble", "white"])
def test_noise_alone_is_not_speech_although_webrtcvad_says_so(kind):
    x = sp.to_int16(sp.noise(kind, 16000 * 20, 16000, seed=9, level_dbfs=-35.0))
    vad = webrtcvad.Vad(2)
    raw = [vad.is_speech(x[i : i + 480].tobytes(), 16000) for i in range(0, len(x) - 479, 480)]
    if kind == "babble":
        assert np.mean(raw) > 0.5
    edges = analyse(x, 16000)
    assert not [e for e in edges if isinstance(e, SpeechStart)]
    assert [e.condition for e in edges if isinstance(e, LineChange)] == ["noisy"]


def _edges_in_blocks(pcm, sizes):
    a = ChannelAnalyzer("rx", 16000, 20, AnalysisSettings(), -40, -45, 10, detect_tones=True)
    out, i, k = [], 0, 0
    while i < len(pcm):
        n = sizes[k % len(sizes)]
        out += a.process(i / 16000, pcm[i : i + n])
        i, k = i + n, k + 1
    return out


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=0, max_value=40000), min_size=1, max_size=6))
def test_edges_do_not_depend_on_how_audio_is_cut_into_blocks(sizes):
    sizes = [s for s in sizes if s] or [1]
    pcm = scenario(-33.0, 15.0, "babble").pcm[: 16000 * 25]
    ref = _edges_in_blocks(pcm, [16000])
    got = _edges_in_blocks(pcm, sizes)
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        assert type(a) is type(b) and a.t == pytest.approx(b.t, abs=1e-9)
        if isinstance(a, LineChange):
            assert a.condition == b.condition and a.noise_dbfs == pytest.approx(b.noise_dbfs, abs=0.01)


def test_time_never_goes_backwards_and_silence_start_is_not_reported():
    a = ChannelAnalyzer("tx", 16000, 10, AnalysisSettings(), -40, -45, 10)
    assert a.process(0.0, np.zeros(16000 * 5, np.int16)) == []
    assert a.condition == "silent" and not a.speaking
    assert a.process(5.0, np.zeros(0, np.int16)) == []
    pcm = sp.to_int16(sp.speech_track(["vm-intro", "vm-leavemsg"], 0.8, 16000, -25.0, tail_s=2.0))
    last, t0 = -1.0, 5.0
    for i in range(0, len(pcm), 777):
        for e in a.process(t0 + i / 16000, pcm[i : i + 777]):
            assert e.t >= last and e.t <= t0 + (i + 777) / 16000 + 1e-9
            last = e.t
    assert last > 5.0 and a.level_dbfs == pytest.approx(-25.0, abs=3.0)


def test_bad_audio_is_an_audio_format_error():
    with pytest.raises(AudioFormatError, match="44100 Hz"):
        ChannelAnalyzer("rx", 44100, 30, AnalysisSettings(), -40, -45, 10)
    a = ChannelAnalyzer("rx", 16000, 30, AnalysisSettings(), -40, -45, 10)
    with pytest.raises(AudioFormatError, match="rx audio: need mono int16"):
        a.process(0.0, np.zeros((10, 2), np.int16))
    with pytest.raises(AudioFormatError, match="rx audio"):
        a.process(0.0, np.zeros(10, np.float32))


def test_a_gap_in_the_capture_re_anchors_the_clock():
    sc = scenario(-25.0, 30.0, "white")
    pcm = sc.pcm
    a = ChannelAnalyzer("rx", 16000, 30, AnalysisSettings(), -40, -45, 10)
    half = 16000 * 10 + 123  # not a whole number of frames
    first = a.process(0.0, pcm[:half])
    later = a.process(100.0, pcm[half:])  # the device stalled for ~90 s
    assert first and later and all(e.t >= 100.0 for e in later)
    assert all(getattr(e, "start_t", 100.0) >= 100.0 for e in later if isinstance(e, SpeechStart))
