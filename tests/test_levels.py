"""Level metering conventions, the P.56-style active level, and the corpus builder hal/speech."""

import numpy as np
import pytest

from firmware.analysis.analyzer import ChannelAnalyzer
from firmware.analysis.edges import SpeechEnd
from firmware.analysis.levels import (
    SILENCE_DBFS,
    active_level_dbfs,
    frame_peak_dbfs,
    frame_power,
    power_to_dbfs,
    rms_dbfs,
)
from firmware.config.settings import AnalysisSettings
from firmware.errors import InputError
from firmware.sim import speech as sp

RATE = 16000


def sine(level_dbfs, seconds=1.0, freq=1000.0, rate=RATE):
    t = np.arange(int(seconds * rate)) / rate
    return 32768.0 * 10 ** (level_dbfs / 20) * np.sin(2 * np.pi * freq * t)


def test_full_scale_sine_is_0_dbfs_and_square_is_plus_3():
    assert rms_dbfs(sine(0.0)) == pytest.approx(0.0, abs=0.01)
    assert rms_dbfs(sine(-20.0)) == pytest.approx(-20.0, abs=0.01)
    square = np.where(np.arange(RATE) % 16 < 8, 32767.0, -32767.0)
    assert rms_dbfs(square) == pytest.approx(3.01, abs=0.02)
    assert rms_dbfs(np.zeros(100)) == SILENCE_DBFS


def test_frame_power_and_peak_are_per_row():
    x = np.stack([sine(-6.0, 0.03), sine(-30.0, 0.03), np.zeros(480)])
    lv = power_to_dbfs(frame_power(x))
    assert lv == pytest.approx([-6.0, -30.0, SILENCE_DBFS], abs=0.05)
    pk = frame_peak_dbfs(x)
    assert pk[0] == pytest.approx(-6.0, abs=0.05) and pk[1] == pytest.approx(-30.0, abs=0.05)


def test_active_level_ignores_pauses():
    burst = np.concatenate([sine(-20.0), np.zeros(RATE), sine(-20.0), np.zeros(2 * RATE)])
    assert rms_dbfs(burst) == pytest.approx(-20.0 - 10 * np.log10(5 / 2), abs=0.05)
    # P.56's 0.2 s hangover counts a little of each pause: 2 s of tone, 2.4 s active.
    assert active_level_dbfs(burst, RATE) == pytest.approx(-20.0 - 10 * np.log10(2.4 / 2), abs=0.1)


def test_speech_track_has_the_asked_active_level():
    x, segs = sp.speech_track_segments(["vm-intro", "vm-leavemsg"], 0.7, RATE, -33.0, lead_s=1.0)
    assert active_level_dbfs(x, RATE) == pytest.approx(-33.0, abs=0.05)
    assert segs[0][1] == pytest.approx(1.0) and segs[1][1] == pytest.approx(segs[0][2] + 0.7, abs=1e-3)
    assert len(x) / RATE == pytest.approx(segs[1][2], abs=1e-3)
    # The lead is silent, the prompt is not.
    assert not x[:RATE].any() and rms_dbfs(x[int(segs[0][1] * RATE) : int(segs[0][2] * RATE)]) > -45


@pytest.mark.parametrize("kind", sp.NOISE_KINDS)
def test_mix_sets_the_snr_and_noise_is_deterministic(kind):
    clean = sp.speech_track(["vm-intro"], 0, RATE, -30.0)
    nz = sp.noise(kind, len(clean), RATE, seed=5)
    assert rms_dbfs(nz) == pytest.approx(-30.0, abs=0.01)
    assert np.array_equal(nz, sp.noise(kind, len(clean), RATE, seed=5))
    assert not np.array_equal(nz, sp.noise(kind, len(clean), RATE, seed=6))
    mixed = sp.mix(clean, nz, 12.0, RATE)
    assert rms_dbfs(mixed - clean) == pytest.approx(-42.0, abs=0.01)


@pytest.mark.parametrize("rate", [8000, 16000, 32000, 48000])
def test_prompts_resample_to_every_capture_rate(rate):
    p8 = sp.load_prompt("vm-intro", 8000)
    p = sp.load_prompt("vm-intro", rate)
    assert len(p) == pytest.approx(len(p8) * rate / 8000, abs=2)
    assert active_level_dbfs(p, rate) == pytest.approx(active_level_dbfs(p8, 8000), abs=0.3)


def test_missing_prompts_dir_is_a_clear_input_error(tmp_path, monkeypatch):
    monkeypatch.setenv(sp.PROMPTS_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match="nowhere: no voice prompts found"):
        sp.prompts_dir()
    monkeypatch.delenv(sp.PROMPTS_ENV)
    with pytest.raises(InputError, match="no such prompt"):
        sp.load_prompt("no-such-prompt-xyz")


def test_tone_generator_cadence_and_level():
    x = sp.tone((450.0,), (0.35, 0.35), 1.4, 8000, level_dbfs=-20.0)
    on = np.abs(x) > 0
    assert on[: int(0.34 * 8000)][1:].all() and not on[int(0.36 * 8000) : int(0.69 * 8000)].any()
    assert rms_dbfs(x[: int(0.35 * 8000)]) == pytest.approx(-20.0, abs=0.1)


def test_wav_round_trip(tmp_path):
    x = sp.speech_track(["vm-intro"], 0, RATE, -25.0)
    path = sp.write(tmp_path / "a.wav", x, RATE)
    from firmware.sim.wav import read_wav

    rate, pcm = read_wav(path)
    assert rate == RATE and np.array_equal(pcm, sp.to_int16(x))


def test_gain_db_is_applied_before_analysis():
    x = sp.speech_track(["vm-intro", "vm-leavemsg"], 1.0, RATE, -45.0, lead_s=2.0, tail_s=1.0)
    pcm = sp.to_int16(x + sp.noise("white", len(x), RATE, level_dbfs=-85.0))
    levels = {}
    for gain in (0.0, 10.0):
        a = ChannelAnalyzer("tx", RATE, 30, AnalysisSettings(), -40, -45, 10, gain_db=gain)
        edges = a.process(0.0, pcm) + a.process(len(pcm) / RATE, np.zeros(RATE, np.int16))
        ends = [e.active_level_dbfs for e in edges if isinstance(e, SpeechEnd)]
        assert ends, f"no utterance with gain {gain}"
        levels[gain] = float(np.median(ends))
    assert levels[0.0] == pytest.approx(-45.0, abs=1.5)
    assert levels[10.0] - levels[0.0] == pytest.approx(10.0, abs=1.0)
