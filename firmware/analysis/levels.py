"""Level metering in dBFS: frame RMS and peak, noise floor and active speech level.

Convention (used everywhere in the station): **a full-scale sine has an RMS level of
0 dBFS**. For int16 samples that is `10*log10(mean(x**2) / (32768**2 / 2))`; a full-scale
square wave reads +3 dBFS and digital silence reads `SILENCE_DBFS`. Peaks are
`20*log10(max|x| / 32768)` (0 dBFS = full scale).

Everything here works on whole blocks of frames shaped (n_frames, frame_len) so the
analyser pays a few numpy calls per block, never per frame.
"""

from __future__ import annotations

import numpy as np

FULL_SCALE = 32768.0
SINE_POWER_FS = FULL_SCALE * FULL_SCALE / 2.0  # mean square of a full-scale int16 sine
SILENCE_DBFS = -100.0  # what digital silence reads (not -inf)
EPS_POWER = SINE_POWER_FS * 10.0 ** (SILENCE_DBFS / 10.0)  # the power of SILENCE_DBFS, added before log


def frame_power(frames: np.ndarray) -> np.ndarray:
    """Mean square of each row of (n_frames, frame_len) samples (int16 units), float64."""
    frames = np.asarray(frames, dtype=np.float32)
    return np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / frames.shape[1]


def power_to_dbfs(power) -> np.ndarray:
    """Mean square (int16 units) to dBFS (full-scale sine = 0), floored at SILENCE_DBFS."""
    return 10.0 * np.log10((np.asarray(power, dtype=np.float64) + EPS_POWER) / SINE_POWER_FS)


def dbfs_to_power(level_dbfs) -> np.ndarray:
    """Inverse of power_to_dbfs (mean square in int16 units)."""
    return SINE_POWER_FS * 10.0 ** (np.asarray(level_dbfs, dtype=np.float64) / 10.0)


def frame_peak_dbfs(frames: np.ndarray) -> np.ndarray:
    """Peak |sample| of each row, in dBFS re full scale."""
    peak = np.abs(np.asarray(frames, dtype=np.float32)).max(axis=1)
    return 20.0 * np.log10(np.maximum(peak, 1.0) / FULL_SCALE)


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level of a whole signal given in int16 units (float or int arrays)."""
    x = np.asarray(samples, dtype=np.float64)
    return float(power_to_dbfs(np.mean(x * x)) if x.size else SILENCE_DBFS)


def active_level_dbfs(samples: np.ndarray, rate_hz: int, margin_db: float = 15.9, hangover_s: float = 0.2) -> float:
    """Active speech level of a whole (clean) signal, in the spirit of ITU-T P.56 method B.

    The signal is cut in 10 ms frames; a frame is active if its level is within `margin_db`
    (P.56: 15.9 dB) of the resulting active level, extended by a `hangover_s` hangover so
    the low-energy ends of words count. The active level is the mean power over active
    frames; the fixed point is found by iterating from the overall RMS level.
    """
    x = np.asarray(samples, dtype=np.float64)
    n = rate_hz // 100
    n_frames = len(x) // n
    if n_frames == 0:
        return SILENCE_DBFS
    frames = x[: n_frames * n].reshape(n_frames, n)
    power = np.einsum("ij,ij->i", frames, frames) / n
    level = power_to_dbfs(power)
    hang = max(0, int(round(hangover_s * 100)))
    active_dbfs = float(power_to_dbfs(power.mean()))
    for _ in range(20):
        above = level > active_dbfs - margin_db
        if hang:
            # Hangover: a frame is active if any of the previous `hang` frames was above.
            csum = np.concatenate(([0], np.cumsum(above)))
            start = np.maximum(np.arange(n_frames) - hang, 0)
            above = (csum[np.arange(n_frames) + 1] - csum[start]) > 0
        if not above.any():
            return SILENCE_DBFS
        new = float(power_to_dbfs(power[above].mean()))
        if abs(new - active_dbfs) < 0.01:
            return new
        active_dbfs = new
    return active_dbfs
