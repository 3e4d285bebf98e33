"""The analyser's per-frame bookkeeping (kept for the live path's cost) equals what it stands
for, recomputed from the history buffer: the noise-frame flags and the running counts of the
line floor's windows, through history compactions, at several frame lengths and windows."""

import numpy as np
import pytest

from firmware.analysis.analyzer import LINE_GUARD, ChannelAnalyzer
from firmware.analysis.echo import EchoEstimator
from firmware.config.settings import AnalysisSettings
from firmware.sim import speech as sp

RATE_HZ = 16000


def call_audio(seconds: float) -> np.ndarray:
    """Prompts with pauses over a quiet line: speech, noise frames and utterances all change."""
    rng = np.random.default_rng(4)
    x = sp.noise("pink", int(seconds * RATE_HZ), RATE_HZ, seed=5, level_dbfs=-60.0)
    t = 0.5
    while True:
        names = [str(s) for s in rng.choice(sp.SPEECH_PROMPTS, size=2, replace=False)]
        y = sp.speech_track(names, float(rng.uniform(0.2, 1.5)), RATE_HZ, -26.0)
        start = int(t * RATE_HZ)
        if start + len(y) > len(x):
            break
        x[start : start + len(y)] += y
        t += len(y) / RATE_HZ + float(rng.uniform(0.3, 4.0))
    return sp.to_int16(x)


@pytest.mark.parametrize(("frame_ms", "noise_window_s"), [(30, 3.0), (10, 3.0), (20, 12.0)])
def test_noise_flags_and_running_counts_match_the_history(frame_ms, noise_window_s):
    a = ChannelAnalyzer("rx", RATE_HZ, frame_ms, AnalysisSettings(noise_window_s=noise_window_s), -40.0, -45.0, 15.0)
    x = call_audio(70.0)  # more frames than the history buffer holds: it is compacted
    W, S, G = a._noise_win, a._speech_win, LINE_GUARD
    step = RATE_HZ * 30 // 1000
    checked = 0
    for i in range(0, len(x), step):
        a.process(i / RATE_HZ, x[i : i + step])
        g, pos, buf = a._next_frame - 1, a._pos, a._buf
        if g < W + 2 * G or g < S or pos < W + 2 * G:  # (right after a compaction the line floor
            continue  # counts no noise frames, as before the flags: see _line_update)
        quiet = buf[3, pos - W - 2 * G : pos] > 0.0
        # a noise frame: quiet, and LINE_GUARD quiet frames on both sides
        expected = np.array([quiet[j : j + 2 * G + 1].all() for j in range(W)])
        assert np.array_equal(a._noise_flags[pos - W - G : pos - G], expected)
        assert a._noise_count == np.count_nonzero(expected)
        assert a._speech_count == np.count_nonzero(buf[2, pos - S : pos])
        checked += 1
    assert checked > 1000
    assert a._next_frame > buf.shape[1]  # compacted at least once


@pytest.mark.parametrize(("frame_ms", "noise_window_s"), [(30, 3.0), (10, 3.0), (20, 12.0)])
def test_line_depth_level_is_the_sorted_line_windows(frame_ms, noise_window_s):
    """`_depth_level` (the line window's k-th smallest, derived from the fast floor's sorted
    window) equals sorting the line window itself, at every update frame."""
    a = ChannelAnalyzer("rx", RATE_HZ, frame_ms, AnalysisSettings(noise_window_s=noise_window_s), -40.0, -45.0, 15.0)
    x = call_audio(70.0)
    W, G, U = a._noise_win, LINE_GUARD, a._update_every
    step = RATE_HZ * frame_ms // 1000  # one frame a block: the update frame is the block's last
    checked = 0
    for i in range(0, len(x), step):
        a.process(i / RATE_HZ, x[i : i + step])
        g, pos = a._next_frame - 1, a._pos
        if g % U or g < W + G or pos < W + G:
            continue
        assert a._depth_level() == np.sort(a._buf[0, pos - W - G : pos - G])[a._depth_rank]
        checked += 1
    assert checked > 100


def test_echo_bound_decides_as_the_exact_echo_level():
    """`EchoEstimator.frame` may return a bound of the echo level instead of the level
    (the agent quiet); the analyser's two comparisons come out the same as with the exact
    level (no floor given, -inf: always exact)."""
    rng = np.random.default_rng(7)
    exact, bounded = EchoEstimator(0.03), EchoEstimator(0.03)
    floor = -60.0
    differs = 0
    for k in range(6000):
        talk = (k // 50) % 3 == 0  # the agent talks in bursts
        tx = float(rng.uniform(-40.0, -20.0)) if talk else float(rng.uniform(-75.0, -65.0))
        rx = float(rng.uniform(-62.0, -5.0))  # (no consistent echo: the per-lag form, bounded)
        e = exact.frame(rx, tx, talk)
        b = bounded.frame(rx, tx, talk, floor)
        assert (rx <= e + exact.margin_db) == (rx <= b + bounded.margin_db)
        assert (e > floor) == (b > floor)
        differs += e != b
        if k % 8 == 0:
            exact.update(floor)
            bounded.update(floor)
    assert differs > 100  # the bound was taken
