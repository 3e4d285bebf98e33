"""Whole-recording measurements for the technician commands: level, noise floor, speech share,
and the agent->customer channel coupling (a receive tap wired to the microphone reads ~0 dB).

`selftest` and `calibrate` look at a few seconds of each channel at once, unlike the
streaming analyser; they share the station's dBFS convention (firmware.levels) and VAD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.analysis.analyzer import ChannelAnalyzer
from firmware.analysis.levels import FULL_SCALE, SILENCE_DBFS, active_level_dbfs, frame_power, power_to_dbfs
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

    def line(self) -> str:
        if self.digital_silence:
            return "digital silence (channel not connected?)"
        speech = f"speech {self.speech_share:.0%} at {self.speech_dbfs:.1f} dBFS" if self.speech_share else "no speech"
        return (
            f"level {self.level_dbfs:.1f} dBFS, peak {self.peak_dbfs:.1f} dBFS, "
            f"noise floor {self.noise_dbfs:.1f} dBFS, {speech}"
        )


def measure(samples: np.ndarray, rate_hz: int, aggressiveness: int = 2) -> ChannelReport:
    x = np.asarray(samples, dtype=np.int16)
    n = rate_hz * FRAME_MS // 1000
    n_frames = len(x) // n
    frames = x[: n_frames * n].reshape(n_frames, n)
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
    )


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
