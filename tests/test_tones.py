"""Busy/reorder tone detection per tone plan; no false tones on speech or wrong cadences."""

import numpy as np
import pytest
from fixtures_corpus import analyse, scenario

from firmware.analysis.edges import SpeechStart, ToneDetected
from firmware.analysis.tones import CONFIRM_CYCLES, TONE_PLANS, ToneDetector
from firmware.config.settings import AnalysisSettings
from firmware.sim import speech as sp

CASES = [(plan, cad) for plan, tp in TONE_PLANS.items() for cad in tp.cadences]


def call_then_tone(plan, cadence, rate, tone_s=6.0, tone_dbfs=-20.0, noise_dbfs=-45.0, speech_s=10.0):
    """Customer speech, then the far end hangs up and the exchange plays the tone."""
    tp = TONE_PLANS[plan]
    talk = scenario(-25.0, 20.0, "white", rate).pcm[: int(speech_s * rate)].astype(np.float64)
    tone = sp.tone(tp.freqs_hz, cadence, tone_s, rate, tone_dbfs)
    tone = tone + sp.noise("white", len(tone), rate, seed=3, level_dbfs=noise_dbfs)
    return sp.to_int16(np.concatenate([talk, tone]))


@pytest.mark.parametrize("plan, cad", CASES, ids=[c.name for _, c in CASES])
@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_each_plan_tone_is_confirmed_after_two_cycles(plan, cad, rate):
    pcm = call_then_tone(plan, (cad.on_s, cad.off_s), rate)
    edges = analyse(pcm, rate, settings=AnalysisSettings(tone_plan=plan))
    tones = [e for e in edges if isinstance(e, ToneDetected)]
    assert [e.tone for e in tones] == [cad.name]
    after = tones[0].t - 10.0
    cycle = cad.on_s + cad.off_s
    # Confirmed when the third burst starts: two whole cycles, plus a frame or two.
    assert CONFIRM_CYCLES * cycle - 0.1 <= after <= CONFIRM_CYCLES * cycle + 0.15
    assert tones[0].channel == "rx"
    # The tone is not the customer speaking.
    assert not [e for e in edges if isinstance(e, SpeechStart) and e.t > 10.2]


def test_tone_found_through_a_noisy_line():
    pcm = call_then_tone("cn", (0.35, 0.35), 16000, tone_dbfs=-30.0, noise_dbfs=-40.0)
    edges = analyse(pcm, 16000, settings=AnalysisSettings(tone_plan="cn"))
    assert [e.tone for e in edges if isinstance(e, ToneDetected)] == ["busy-cn"]


@pytest.mark.parametrize("plan, other", [("cn", "na"), ("na", "etsi"), ("etsi", "na")])
def test_another_countrys_tone_is_not_this_plans_tone(plan, other):
    cad = TONE_PLANS[other].cadences[0]
    pcm = call_then_tone(other, (cad.on_s, cad.off_s), 16000)
    edges = analyse(pcm, 16000, settings=AnalysisSettings(tone_plan=plan))
    assert not [e for e in edges if isinstance(e, ToneDetected)]


@pytest.mark.parametrize("cadence", [(0.35, 0.0), (1.0, 1.0), (0.1, 0.1)], ids=["steady", "slow", "fast"])
def test_wrong_cadence_is_not_a_busy_tone(cadence):
    on, off = cadence
    pcm = call_then_tone("cn", (on, off) if off else (10.0, 0.0), 16000)
    edges = analyse(pcm, 16000, settings=AnalysisSettings(tone_plan="cn"))
    assert not [e for e in edges if isinstance(e, ToneDetected)]


def test_tone_reported_once_per_burst_and_again_after_a_pause():
    rate = 16000
    one = call_then_tone("etsi", (0.5, 0.5), rate, speech_s=3.0)
    pcm = np.concatenate([one, np.zeros(5 * rate, np.int16), one])
    edges = analyse(pcm, rate, settings=AnalysisSettings(tone_plan="etsi"))
    assert [e.tone for e in edges if isinstance(e, ToneDetected)] == ["busy-etsi", "busy-etsi"]


def test_goertzel_share_is_one_for_the_tone_and_small_for_noise():
    rate, n = 16000, 480
    det = ToneDetector("na", rate, n)
    t = np.arange(4 * n) / rate
    tone = (3000 * (np.sin(2 * np.pi * 480 * t) + np.sin(2 * np.pi * 620 * t))).reshape(4, n).astype(np.float32)
    noise = np.random.default_rng(0).normal(0, 3000, (4, n)).astype(np.float32)
    one = (3000 * np.sin(2 * np.pi * 480 * t)).reshape(4, n).astype(np.float32)  # half the pair
    for frames, lo, hi in ((tone, 0.9, 1.1), (noise, 0.0, 0.05), (one, 0.0, 0.01)):
        share = det.tone_share(frames, np.einsum("ij,ij->i", frames, frames))
        assert np.all((share >= lo) & (share <= hi))


def test_no_false_tones_on_the_speech_corpus(corpus_results):
    assert all(r["tones"] == [] for r in corpus_results)
    assert len(corpus_results) >= 90


@pytest.mark.parametrize("plan", ["na", "etsi"])
def test_no_false_tones_on_speech_with_the_other_plans(plan):
    for level in (-45.0, -33.0, -12.0):
        for snr, kind in ((None, "white"), (20.0, "babble")):
            edges = analyse(scenario(level, snr, kind).pcm, 16000, settings=AnalysisSettings(tone_plan=plan))
            assert not [e for e in edges if isinstance(e, ToneDetected)], (level, snr, kind)


def test_fast_tone_test_matches_the_share():
    rate, n = 8000, 240
    for plan in TONE_PLANS:
        det = ToneDetector(plan, rate, n)
        rng = np.random.default_rng(2)
        t = np.arange(n) / rate
        tone = sum(np.sin(2 * np.pi * f * t) for f in TONE_PLANS[plan].freqs_hz)
        frames = np.stack(
            [3000 * tone + rng.normal(0, s, n) for s in (0, 300, 1000, 2000, 4000, 8000)]
            + [rng.normal(0, 1, n), np.zeros(n)]
        ).astype(np.float32)
        energy = np.einsum("ij,ij->i", frames, frames)
        from firmware.analysis.tones import TONE_SHARE

        assert np.array_equal(det.tone_on(frames, energy / n), det.tone_share(frames, energy) >= TONE_SHARE)
