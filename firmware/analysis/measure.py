"""Whole-recording measurements for the technician commands: level, noise floor, speech share,
the sound card's DC offset, mains hum, and the agent->customer channel coupling (a receive tap
wired to the microphone reads ~0 dB).

Levels are metered without the DC offset, as the analyser meters them (levels.DcOffset);
the offset itself is reported. Mains hum (a ground loop between the headset amplifier's
tap, the sound card and the Pi) is lines at multiples of 50 or 60 Hz standing out of the
spectrum around them: unlike an offset it is sound, and at -50 dBFS and above it makes a
quiet line read `noisy` and hides quiet speech, so selftest fails on it.

`selftest` and `calibrate` look at a few seconds of each channel at once, unlike the
streaming analyser; they share the station's dBFS convention (firmware.levels) and VAD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.analysis.analyzer import ChannelAnalyzer
from firmware.analysis.levels import (
    DC_MIN_COUNTS,
    FULL_SCALE,
    SILENCE_DBFS,
    active_level_dbfs,
    frame_power,
    power_to_dbfs,
)
from firmware.analysis.vad import make_vad, vad_rate_for
from firmware.config.settings import AnalysisSettings

FRAME_MS = 30


@dataclass(frozen=True)
class ChannelReport:
    level_dbfs: float  # RMS over the whole recording
    noise_dbfs: float  # 10th percentile of the 30 ms frame levels
    speech_dbfs: float  # active level of the speech frames (SILENCE_DBFS if none)
    speech_share: float  # fraction of frames the VAD calls speech
    peak_dbfs: float
    digital_silence: bool  # every sample zero: a dead channel, not a quiet one
    dc_counts: int = 0  # the sound card's DC offset (int16 counts)
    hum: tuple[int, float] | None = None  # (mains Hz, level dBFS) of a hum, if any

    def line(self) -> str:
        if self.digital_silence:
            return "digital silence (channel not connected?)"
        speech = f"speech {self.speech_share:.0%} at {self.speech_dbfs:.1f} dBFS" if self.speech_share else "no speech"
        extra = f", DC offset {self.dc_counts} counts (taken out)" if abs(self.dc_counts) >= DC_MIN_COUNTS else ""
        if self.hum is not None:
            extra += f", mains hum {self.hum[0]} Hz at {self.hum[1]:.1f} dBFS"
        return (
            f"level {self.level_dbfs:.1f} dBFS, peak {self.peak_dbfs:.1f} dBFS, "
            f"noise floor {self.noise_dbfs:.1f} dBFS, {speech}{extra}"
        )


def measure(samples: np.ndarray, rate_hz: int, aggressiveness: int = 2) -> ChannelReport:
    x = np.asarray(samples, dtype=np.int16)
    n = rate_hz * FRAME_MS // 1000
    n_frames = len(x) // n
    dc = round(float(x.mean())) if len(x) else 0
    frames = x[: n_frames * n].reshape(n_frames, n).astype(np.float64) - dc  # (webrtcvad: the raw samples)
    power = frame_power(frames)
    levels = power_to_dbfs(power) if n_frames else np.array([SILENCE_DBFS])
    flags = _vad_flags(x[: n_frames * n], rate_hz, n, aggressiveness) if n_frames else np.zeros(0, bool)
    speech = frames[flags].ravel()
    peak = float(np.abs(x.astype(np.int32)).max()) if len(x) else 0.0
    return ChannelReport(
        level_dbfs=round(float(power_to_dbfs(power.mean())) if n_frames else SILENCE_DBFS, 1),
        noise_dbfs=round(float(np.percentile(levels, 10)), 1),
        speech_dbfs=round(active_level_dbfs(speech, rate_hz) if speech.size else SILENCE_DBFS, 1),
        speech_share=round(float(flags.mean()) if n_frames else 0.0, 3),
        peak_dbfs=round(20 * np.log10(peak / FULL_SCALE) if peak else SILENCE_DBFS, 1),
        digital_silence=not x.any(),
        dc_counts=dc,
        hum=mains_hum(x, rate_hz),
    )


HUM_MAINS_HZ = (50, 60)
HUM_HARMONICS = 5  # lines at 1..5 times the mains frequency (a ground loop's buzz is rich in them)
HUM_SEGMENT_S = 1.0  # the recording is cut in segments this long; a hum is a line in every one,
HUM_MIN_SEGMENTS = 2  # and a recording shorter than this many says nothing of hum
HUM_LINE_HZ = 2.0  # a line's width each side (the window's main lobe; the mains drifts a little)
HUM_RING_HZ = (4.0, 15.0)  # the spectrum around a line it is compared with, each side
HUM_TONAL_DB = 10.0  # a line stands this far over that spectrum
MIN_HUM_DBFS = -70.0  # quieter hum is not reported
MAX_HUM_DBFS = -50.0  # louder hum fails selftest and is pointed out by calibrate


def mains_hum(samples: np.ndarray, rate_hz: int) -> tuple[int, float] | None:
    """(mains frequency Hz, level dBFS) of the hum in a recording of HUM_MIN_SEGMENTS segments
    or more:
    the lines at 1..HUM_HARMONICS times 50 or 60 Hz that stand HUM_TONAL_DB over the
    spectrum around them in every HUM_SEGMENT_S segment (a voice holds no pitch that long:
    a vowel on 150 Hz is a line in one segment, not in all), each at its weakest segment's
    power; the mains frequency with more; None below MIN_HUM_DBFS or with no such line."""
    seg = int(HUM_SEGMENT_S * rate_hz)
    n_seg = len(samples) // seg
    if n_seg < HUM_MIN_SEGMENTS:
        return None
    x = np.asarray(samples[: n_seg * seg], dtype=np.float64).reshape(n_seg, seg)
    w = np.hanning(seg)
    spec = np.abs(np.fft.rfft((x - x.mean(axis=1, keepdims=True)) * w, axis=1)) ** 2
    to_power = 2.0 / (seg * float(np.dot(w, w)))  # one-sided bins -> mean square of a sine
    df = rate_hz / seg
    half, lo, hi = max(1, round(HUM_LINE_HZ / df)), round(HUM_RING_HZ[0] / df), round(HUM_RING_HZ[1] / df)
    best: tuple[int, float] | None = None
    for mains_hz in HUM_MAINS_HZ:
        total = 0.0
        for k in range(1, HUM_HARMONICS + 1):
            c = round(k * mains_hz / df)
            line = spec[:, c - half : c + half + 1].sum(axis=1)
            ring = np.concatenate((spec[:, c - hi : c - lo], spec[:, c + lo : c + hi]), axis=1)
            background = np.median(ring, axis=1) * (2 * half + 1)
            if (line > background * 10.0 ** (HUM_TONAL_DB / 10.0)).all():
                total += float((line - background).min())
        level = float(power_to_dbfs(total * to_power))
        if total > 0 and level >= MIN_HUM_DBFS and (best is None or level > best[1]):
            best = (mains_hz, round(level, 1))
    return best


def _vad_flags(x: np.ndarray, rate_hz: int, n: int, aggressiveness: int) -> np.ndarray:
    vad_rate = vad_rate_for(rate_hz)
    step = rate_hz // vad_rate
    y = x[::step] if step > 1 else x  # crude decimation is fine for a yes/no speech check
    m = n // step
    vad = make_vad(aggressiveness)
    return np.array([vad.is_speech(y[i : i + m].tobytes(), vad_rate) for i in range(0, len(y) - m + 1, m)], bool)


def echo_coupling(
    tx: np.ndarray,
    rx: np.ndarray,
    rate_hz: int,
    analysis: AnalysisSettings | None = None,
    frame_ms: int = FRAME_MS,
    tx_gain_db: float = 0.0,
    rx_gain_db: float = 0.0,
):
    """(coupling dB, delay ms) of the agent's voice on the customer channel, as the streaming
    analyser estimates it over the whole recording; None when no consistent echo is seen."""
    analysis = analysis or AnalysisSettings()
    n = min(len(tx), len(rx))
    a_tx = ChannelAnalyzer("tx", rate_hz, frame_ms, analysis, -40.0, -45.0, 10.0, gain_db=tx_gain_db)
    a_rx = ChannelAnalyzer("rx", rate_hz, frame_ms, analysis, -40.0, -45.0, 10.0, gain_db=rx_gain_db, echo=True)
    a_tx.process(0.0, np.asarray(tx[:n], dtype=np.int16))
    a_rx.process(0.0, np.asarray(rx[:n], dtype=np.int16), ref=a_tx.block_ref)
    if a_rx.echo_coupling_db is None:
        return None
    return a_rx.echo_coupling_db, a_rx.echo_delay_ms
