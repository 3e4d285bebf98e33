"""Speech corpus built at test time from the Asterisk voice prompts, with truth by construction.

A scenario is a few prompts at a known active level, after 3 s of line noise, mixed with
white/pink/babble noise at a known SNR. Truth:
  * per frame: the clean speech's 30 ms energy envelope (frames within 25 dB of its active
    level, gaps shorter than the hangover bridged) = "speech";
  * line condition from the SPEC thresholds (low -40 dBFS, noise floor -45 dBFS, SNR 10 dB):
    noisy if noise level > -45 or SNR < 10, else low if level < -40, else ok. Scenarios within
    3 dB of a threshold are "borderline" and not scored.
Plain functions (also used by tools/bench) plus session fixtures for the tests.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pytest

from firmware.analysis.analyzer import ChannelAnalyzer
from firmware.analysis.edges import LineChange, SpeechEnd, SpeechStart, ToneDetected
from firmware.analysis.levels import frame_power, power_to_dbfs
from firmware.config.settings import AnalysisSettings
from firmware.sim import speech as sp

LOW_DBFS, NOISE_DBFS, SNR_DB = -40.0, -45.0, 10.0
CLEAN_NOISE_DBFS = -90.0  # the "clean" line still has a little white noise
LEVELS_DBFS = (-55.0, -45.0, -33.0, -22.0, -12.0)
SNRS_DB = (0.0, 5.0, 10.0, 15.0, 20.0, 30.0, None)  # None = clean
KINDS = ("white", "pink", "babble")
LEAD_S = 3.0
FRAME_MS = 30


@dataclass
class Scenario:
    level_dbfs: float
    snr_db: float | None
    kind: str
    rate_hz: int
    pcm: np.ndarray  # int16, mixed
    truth_frames: np.ndarray  # bool per FRAME_MS frame
    speech_span_s: tuple  # (first speech start, last speech end)
    truth_condition: str
    borderline: bool


def truth_condition(level_dbfs: float, snr_db: float | None):
    noise = level_dbfs - snr_db if snr_db is not None else CLEAN_NOISE_DBFS
    snr = level_dbfs - noise
    noisy = noise > NOISE_DBFS or snr < SNR_DB
    cond = "noisy" if noisy else ("low" if level_dbfs < LOW_DBFS else "ok")
    border = abs(noise - NOISE_DBFS) < 3 or abs(snr - SNR_DB) < 3 or (not noisy and abs(level_dbfs - LOW_DBFS) < 3)
    return cond, border


def speech_truth(clean: np.ndarray, rate_hz: int, level_dbfs: float, hangover_ms: int = 300) -> np.ndarray:
    n = rate_hz * FRAME_MS // 1000
    frames = clean[: len(clean) // n * n].reshape(-1, n)
    active = power_to_dbfs(frame_power(frames)) > level_dbfs - 25.0
    # Bridge pauses shorter than the hangover: they are inside one utterance.
    idx = np.flatnonzero(active)
    bridge = hangover_ms // FRAME_MS
    for a, b in zip(idx[:-1], idx[1:]):
        if 1 < b - a <= bridge:
            active[a:b] = True
    return active


@functools.lru_cache(maxsize=None)
def scenario(level_dbfs: float, snr_db: float | None, kind: str, rate_hz: int = 16000, seed: int = 0) -> Scenario:
    rng = np.random.default_rng([seed, int(-level_dbfs), KINDS.index(kind), int(snr_db if snr_db is not None else 99)])
    names = [str(s) for s in rng.choice(sp.SPEECH_PROMPTS, size=5, replace=False)]
    gaps = rng.uniform(0.4, 1.5, size=4)
    clean, segs = sp.speech_track_segments(names, gaps, rate_hz, level_dbfs, lead_s=LEAD_S, tail_s=1.0)
    if snr_db is None:
        mixed = clean + sp.noise("white", len(clean), rate_hz, seed=seed, level_dbfs=CLEAN_NOISE_DBFS)
    else:
        mixed = sp.mix(clean, sp.noise(kind, len(clean), rate_hz, seed=seed + 1), snr_db, rate_hz, level_dbfs)
    cond, border = truth_condition(level_dbfs, snr_db)
    return Scenario(
        level_dbfs,
        snr_db,
        kind,
        rate_hz,
        sp.to_int16(mixed),
        speech_truth(clean, rate_hz, level_dbfs),
        (segs[0][1], segs[-1][2]),
        cond,
        border,
    )


def analyse(
    pcm: np.ndarray,
    rate_hz: int,
    block_s: float = 1.0,
    detect_tones: bool = True,
    settings: AnalysisSettings | None = None,
    **kw,
):
    """Run one ChannelAnalyzer over `pcm` in blocks; returns the edges."""
    a = ChannelAnalyzer(
        "rx",
        rate_hz,
        FRAME_MS,
        settings or AnalysisSettings(),
        LOW_DBFS,
        NOISE_DBFS,
        SNR_DB,
        detect_tones=detect_tones,
        **kw,
    )
    step = int(block_s * rate_hz)
    edges = []
    for i in range(0, len(pcm), step):
        edges += a.process(i / rate_hz, pcm[i : i + step])
    return edges


def predicted_frames(edges, n_frames: int) -> np.ndarray:
    """Per-frame speech after smoothing: [start_t, end_t) of every utterance."""
    out = np.zeros(n_frames, dtype=bool)
    fs = FRAME_MS / 1000
    start = None
    for e in edges:
        if isinstance(e, SpeechStart):
            start = e.start_t
        elif isinstance(e, SpeechEnd) and start is not None:
            out[int(round(start / fs)) : int(round(e.end_t / fs))] = True
            start = None
    if start is not None:
        out[int(round(start / fs)) :] = True
    return out


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    n = min(len(pred), len(truth))
    pred, truth = pred[:n], truth[:n]
    tp = np.sum(pred & truth)
    return float(2 * tp / max(1, np.sum(pred) + np.sum(truth)))


def dominant_condition(edges, t_from: float, t_to: float) -> str:
    """The condition that held longest in [t_from, t_to]."""
    timeline = [(0.0, "silent")] + [(e.t, e.condition) for e in edges if isinstance(e, LineChange)]
    held = {}
    for (t, c), nxt in zip(timeline, timeline[1:] + [(t_to, None)]):
        a, b = max(t, t_from), min(nxt[0], t_to)
        if b > a:
            held[c] = held.get(c, 0.0) + b - a
    return max(held, key=held.get) if held else timeline[-1][1]


def evaluate(sc: Scenario, block_s: float = 1.0) -> dict:
    edges = analyse(sc.pcm, sc.rate_hz, block_s)
    pred = predicted_frames(edges, len(sc.truth_frames))
    start, end = sc.speech_span_s
    cond = dominant_condition(edges, start + 6.0, end)
    return {
        "level_dbfs": sc.level_dbfs,
        "snr_db": sc.snr_db,
        "kind": sc.kind,
        "rate_hz": sc.rate_hz,
        "f1": f1(pred, sc.truth_frames),
        "condition": cond,
        "truth": sc.truth_condition,
        "borderline": sc.borderline,
        "tones": [e.tone for e in edges if isinstance(e, ToneDetected)],
        "edges": edges,
    }


def corpus_grid(rate_hz: int = 16000):
    for kind in KINDS:
        for level in LEVELS_DBFS:
            for snr in SNRS_DB:
                if snr is None and kind != "white":
                    continue  # clean is clean: once per level
                yield level, snr, kind, rate_hz


def accuracy_table(results) -> dict:
    """{snr: (right, scored)} over non-borderline scenarios."""
    table = {}
    for r in results:
        if r["borderline"]:
            continue
        right, total = table.get(r["snr_db"], (0, 0))
        table[r["snr_db"]] = (right + (r["condition"] == r["truth"]), total + 1)
    return table


@pytest.fixture(scope="session")
def corpus_results():
    """Every grid scenario at 16 kHz, analysed once per test session."""
    sp.prompts_dir()
    return [evaluate(scenario(*args)) for args in corpus_grid()]
