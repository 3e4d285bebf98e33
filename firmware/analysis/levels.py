"""Level metering in dBFS: frame RMS and peak, noise floor and active speech level.

Convention (used everywhere in the station): **a full-scale sine has an RMS level of
0 dBFS**. For int16 samples that is `10*log10(mean(x**2) / (32768**2 / 2))`; a full-scale
square wave reads +3 dBFS and digital silence reads `SILENCE_DBFS`. Peaks are
`20*log10(max|x| / 32768)` (0 dBFS = full scale).

Everything here works on whole blocks of frames shaped (n_frames, frame_len) so the
analyser pays a few numpy calls per block, never per frame.

A sound card's DC offset is not sound: a channel offset by 100 counts (-47 dBFS) reads as a
noise floor there, so a quiet line turns `noisy` and quiet speech under it is lost (3000
counts hid -26 dBFS speech entirely). `DcOffset` finds the offset and the analyser
subtracts it before it meters anything (webrtcvad, which filters it out itself, gets the
samples as they are).
"""

from __future__ import annotations

import bisect
from collections import deque

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


DC_EVERY_FRAMES = 8  # DcOffset: one frame in each run of this many (0.24 s of 30 ms frames) is sampled,
DC_WINDOW = 15  # and the offset is the median of the last this many sampled frames' means (3.6 s)
DC_MIN_COUNTS = 8  # an offset smaller than this is left alone (-72 dBFS: under any line's floor)
DC_MIN_RUNS = 5  # and none is taken out before this many frames are sampled (1.2 s: the
# swings of a loud low noise can look steady over a few frames in a row, never over a second)
# which frame of each run is sampled, run after run: not the same place in every run, so that
# no tone whose period divides the run's length is always caught at one phase (its frame means
# then differ, and only a steady offset is taken out)
_PICK_PLACES = (3, 6, 1, 4, 7, 2, 5, 0, 2, 7, 4, 1, 6, 3, 0, 5)
DC_PICK_FRAMES = DC_EVERY_FRAMES * len(_PICK_PLACES)  # DC_PICK[g % DC_PICK_FRAMES]: frame g is sampled
DC_PICK = bytes(int(g % DC_EVERY_FRAMES == _PICK_PLACES[g // DC_EVERY_FRAMES]) for g in range(DC_PICK_FRAMES))


class DcOffset:
    """The DC offset of one channel, in whole int16 counts. One frame in each run of
    DC_EVERY_FRAMES (the frames g with DC_PICK[g % DC_PICK_FRAMES]) gives its mean (`take`);
    the offset is the median of the last DC_WINDOW means, rounded, and changes only when those
    means are steady (their middle half spreads less than half the median: an offset, not the
    swings of speech or of a loud low noise) and at least DC_MIN_RUNS are known; under
    DC_MIN_COUNTS it is 0. Whole counts keep the metered powers sums of integer squares
    (exact whatever the block size). The offset a frame is metered with comes from the frames
    before it only, so any block size gives the same offsets. Sampling one frame in eight
    keeps the live path's cost to one sum every 0.24 s."""

    def __init__(self, frame_len: int):
        self._frame_len = frame_len
        self._means: deque[float] = deque(maxlen=DC_WINDOW)
        self._sorted: list[float] = []
        self.offset = 0  # counts, for the frames after the last one taken

    def take(self, frame_sum: float) -> None:
        """A sampled frame's raw samples, summed: update the offset."""
        mean = frame_sum / self._frame_len
        if len(self._means) == DC_WINDOW:
            del self._sorted[bisect.bisect_left(self._sorted, self._means[0])]
        self._means.append(mean)
        bisect.insort(self._sorted, mean)
        s, m = self._sorted, len(self._sorted)
        median = s[m // 2] if m % 2 else 0.5 * (s[m // 2 - 1] + s[m // 2])
        if m >= DC_MIN_RUNS and 2.0 * (s[(3 * m) // 4] - s[m // 4]) <= abs(median):
            self.offset = round(median) if abs(median) >= DC_MIN_COUNTS else 0

    def offsets(self, frames: np.ndarray, g0: int) -> list[int] | None:
        """The offsets frames g0.. ((n, frame_len) int16) are metered with, the sampled ones
        taken in; None when all are 0 (the usual case)."""
        n, every = len(frames), DC_EVERY_FRAMES
        picked = []  # the sampled frames of the block: one in each run of `every`
        for run in range(g0 // every, (g0 + n - 1) // every + 1):
            i = run * every + _PICK_PLACES[run % len(_PICK_PLACES)] - g0
            if 0 <= i < n:
                picked.append(i)
        sums = frames[picked].sum(axis=1, dtype=np.int64).tolist() if picked else []
        out: list[int] = []
        for i, frame_sum in zip(picked, sums, strict=True):
            out += [self.offset] * (i + 1 - len(out))  # frames up to the sampled one, itself included
            self.take(float(frame_sum))
        out += [self.offset] * (n - len(out))
        return out if any(out) else None
