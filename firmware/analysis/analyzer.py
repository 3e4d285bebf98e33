"""Per-channel audio analysis: speech, level, noise floor, line condition and far-end tones.

One `ChannelAnalyzer` per channel (`tx` agent, `rx` customer) turns int16 blocks into the
sparse edges of `firmware.edges`. Work is vectorised per block: frames are a reshaped
(n_frames, frame_len) view, and level, noise floor, speech memory and Goertzel are array
ops; the per-frame Python is only the webrtcvad call and the onset/hangover loop.

Levels are dBFS with a full-scale sine at 0 dBFS RMS (see `firmware.levels`).

Speech decision per frame: webrtcvad alone calls steady noise and babble "speech" and misses
quiet speech (at aggressiveness 3 all of it below about -50 dBFS), so a frame is speech when
  * webrtcvad says so AND its level is a margin above the noise floor, or
  * its level alone is a larger margin above the floor (quiet speech webrtcvad misses),
and never when it is a call-progress tone (rx) or below `MIN_SPEECH_DBFS`. Both margins grow
with the floor's spread (level modulation of the noise): a few dB over steady white or pink
noise, ~9-12 dB over babble, whose bursts webrtcvad takes for speech. Such frames can start
an utterance; webrtcvad speech only `WEAK_MARGIN_DB` above the floor can just continue one,
which keeps words half-masked by babble inside the utterance without letting babble start one.
The noise floor is re-estimated every ~0.25 s over the last `noise_window_s`: the mean power
of the frames within `NOISE_SPREAD_DB` of the window's 10th-percentile level (minimum
statistics, but unbiased for stationary noise and close to the RMS of babble).
The line condition uses the last `SPEECH_MEMORY_S` of utterance frames: their mean power
minus the noise power is the active speech level; its SNR is that minus the floor.

All decisions happen at fixed frame indices, so the edges do not depend on how the audio
is cut into blocks (replay and live give the same result).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from firmware.analysis.edges import Edge, LineChange, SpeechEnd, SpeechLevel, SpeechStart, ToneDetected
from firmware.analysis.levels import EPS_POWER, FULL_SCALE, SILENCE_DBFS, SINE_POWER_FS, power_to_dbfs
from firmware.analysis.linestate import LineState
from firmware.analysis.tones import ToneDetector
from firmware.analysis.vad import Decimator, Smoother, frame_classifier, make_vad, vad_rate_for
from firmware.config.settings import AnalysisSettings
from firmware.errors import AudioFormatError

RATES_HZ = (8000, 16000, 32000, 48000)
FRAME_MS = (10, 20, 30)
UPDATE_S = 0.24             # noise floor / line condition re-evaluated this often
NOISE_QUANTILE = 0.10
NOISE_SPREAD_DB = 6.0
VAD_MARGIN_DB = 3.0         # webrtcvad speech must also be this far above the floor,
VAD_SPREAD_FACTOR = 1.2     # plus this many times the floor's spread (babble fluctuates)
ENERGY_MARGIN_DB = 12.0     # level-only speech over non-stationary noise (babble)...
ENERGY_MIN_MARGIN_DB = 3.0  # ...down to this over steady noise, scaled by the floor's spread
MIN_SPEECH_DBFS = -70.0
WEAK_MARGIN_DB = 3.0        # webrtcvad speech this far above the floor continues an utterance
WARMUP_SPREAD_DB = 7.5
SPEECH_MEMORY_S = 8.0       # speech this recent decides ok/low/noisy; after it, "silent"
SPEECH_PRESENT_S = 0.5      # at least this much utterance time in the memory
LEVEL_WINDOW_S = 1.0        # SpeechLevel: the level of an utterance's last second, once it
LEVEL_EVERY_S = 0.5         # has lasted that long and every half second after
# The margins of the two speech thresholds over the floor, as one expression of the floor's
# spread s: min(base + slope * s, ENERGY_MARGIN_DB); rows webrtcvad speech, level-only speech.
_MARGIN_BASE = np.array([[VAD_MARGIN_DB], [ENERGY_MIN_MARGIN_DB]])
_MARGIN_SLOPE = np.array([[VAD_SPREAD_FACTOR], [2.0]])


class ChannelAnalyzer:
    """Speech, level, line condition and (rx) tones of one channel; see the module docstring.

    `process(t0, samples)` takes int16 mono blocks of any length (contiguous in time; a jump
    re-anchors the clock) and returns the edges found in the block, sorted by `t`. Live state
    for telemetry: `speaking`, `condition`, `level_dbfs`, `noise_dbfs`, `snr_db`, `peak_dbfs`.
    """

    def __init__(self, channel: str, rate_hz: int, frame_ms: int, analysis: AnalysisSettings,
                 low_dbfs: float, noise_dbfs: float, snr_db: float, gain_db: float = 0.0,
                 detect_tones: bool = False):
        if rate_hz not in RATES_HZ:
            raise AudioFormatError(f"{channel} audio: {rate_hz} Hz is not supported (need one of {RATES_HZ})")
        if frame_ms not in FRAME_MS:
            raise AudioFormatError(f"{channel} audio: {frame_ms} ms frames are not supported (need 10, 20 or 30)")
        self.channel = channel
        self.rate_hz = rate_hz
        self.frame_len = rate_hz * frame_ms // 1000
        self._inv_frame_len = 1.0 / self.frame_len
        self.frame_s = frame_ms / 1000.0
        self._gain = 10.0 ** (gain_db / 20.0) if gain_db else None
        self._vad = make_vad(analysis.vad_aggressiveness)
        self._vad_rate = vad_rate_for(rate_hz)
        self._vad_bytes = 2 * self._vad_rate * frame_ms // 1000
        self._decimator = Decimator(rate_hz // self._vad_rate) if self._vad_rate != rate_hz else None
        self._level_frames = round(LEVEL_WINDOW_S / self.frame_s)
        self._smoother = Smoother(int(np.ceil(analysis.onset_ms / frame_ms)),
                                  int(np.ceil(analysis.hangover_ms / frame_ms)),
                                  self._level_frames, round(LEVEL_EVERY_S / self.frame_s))
        self._line = LineState(low_dbfs, noise_dbfs, snr_db, analysis.hysteresis_db, analysis.condition_hold_s)
        self._tones = ToneDetector(analysis.tone_plan, rate_hz, self.frame_len) if detect_tones else None
        self._update_every = max(1, round(UPDATE_S / self.frame_s))
        self._noise_win = max(self._update_every, round(analysis.noise_window_s / self.frame_s))
        self._speech_win = round(SPEECH_MEMORY_S / self.frame_s)
        hist = max(self._noise_win, self._speech_win) - 1
        # Frame history for the sliding windows, rows level / power / utterance flag. +inf
        # levels sort after every real frame, so the floor at start-up uses the frames seen.
        self._hist = np.zeros((3, hist))
        self._hist[0] = np.inf
        self._ranks = np.array([int(self._noise_win * q) for q in (0.05, NOISE_QUANTILE, 0.30)])
        self._pending = _NO_SAMPLES   # the partial frame carried to the next block
        self._origin_t = None
        self._next_frame = 0          # global index of the next whole frame
        self._thr = None              # (floor, vad, energy, weak threshold) dBFS, last update
        self._speech_level = None
        self._win_offsets = np.arange(self._noise_win)
        self._vad_frames = frame_classifier(self._vad, self._vad_rate, self._vad_bytes)
        self._last_t = float("-inf")
        self._peak = None             # peak |sample| of the last block (after the gain)
        self._last_level = SILENCE_DBFS   # level of the last frame

    def set_thresholds(self, low_dbfs: float, noise_dbfs: float, snr_db: float) -> None:
        self._line.set_thresholds(low_dbfs, noise_dbfs, snr_db)

    def process(self, t0: float, samples: np.ndarray) -> list[Edge]:
        samples = np.asarray(samples)
        if samples.ndim != 1 or samples.dtype != np.int16:
            raise AudioFormatError(f"{self.channel} audio: need mono int16 samples, got {samples.dtype} {samples.shape}")
        if self._origin_t is None:
            self._origin_t = float(t0)
        else:
            expected = self._origin_t + (self._next_frame * self.frame_len + len(self._pending)) / self.rate_hz
            if abs(t0 - expected) > self.frame_s / 2:
                # A gap or overlap in the capture: drop the partial frame, re-anchor the clock.
                self._pending = self._pending[:0]
                self._origin_t = float(t0) - self._next_frame * self.frame_s
        x = np.concatenate((self._pending, samples)) if len(self._pending) else samples
        n = len(x) // self.frame_len
        rest = len(x) - n * self.frame_len
        self._pending = x[-rest:].copy() if rest else _NO_SAMPLES
        if n == 0:
            return []
        edges = self._analyse(x[: n * self.frame_len].reshape(n, self.frame_len))
        self._next_frame += n
        if len(edges) > 1:
            edges.sort(key=lambda e: e.t)
        if edges and edges[0].t < self._last_t:
            edges = [dataclasses.replace(e, t=max(e.t, self._last_t)) for e in edges]
        if edges:
            self._last_t = edges[-1].t
        return edges

    # -- one block of whole frames ---------------------------------------------------------
    # Per-call numpy overhead (~1.5 us a call) dominates, so the block is worked in as few
    # numpy calls as possible: the three per-frame series (level, power, utterance flag) live
    # in one (3, history + n) array, scalars use math, and the sliding windows are evaluated
    # only at the few update points of the block.
    def _analyse(self, frames_i16: np.ndarray) -> list:
        n = len(frames_i16)
        g0, fs, t_org = self._next_frame, self.frame_s, self._origin_t
        frames = frames_i16.astype(np.float32)
        peak = float(np.abs(frames).max())           # exact: int16 values are exact in float32
        if self._gain is not None:
            frames *= self._gain
            np.clip(frames, -32768.0, 32767.0, out=frames)   # the calibrated ADC still clips
            peak = min(peak * self._gain, 32768.0)
        self._peak = peak
        H = self._hist.shape[1]
        series = np.empty((3, H + n))                 # rows: level dBFS, power, utterance flag
        series[:, :H] = self._hist
        power = series[1, H:]
        power[:] = np.einsum("ij,ij->i", frames, frames)    # float32 sums: 5x faster than f64
        power *= self._inv_frame_len
        level = series[0, H:]
        np.log10(power + EPS_POWER, out=level)   # power_to_dbfs, in place
        level *= 10.0
        level -= _SINE_DB

        # Noise floor and thresholds at the update points inside this block (g % U == 0);
        # frame k uses the update at or before it.
        U = self._update_every
        first = (-g0) % U
        upd = range(first, n, U)
        if len(upd):
            floors, spreads = self._noise_floor(series, upd, g0)
            # Rows floor / vad / energy / weak threshold; column j + 1 is update j, column 0
            # the last update, for the frames before the first one here (none on the very
            # first block: g0 == 0, so first == 0 and _thr is still None).
            table = np.empty((4, len(upd) + 1))
            if self._thr is not None:
                table[:, 0] = self._thr
            table[0, 1:] = floors
            margins = table[1:3, 1:]
            np.minimum(_MARGIN_BASE + _MARGIN_SLOPE * spreads, ENERGY_MARGIN_DB, out=margins)
            margins += floors
            np.maximum(margins, MIN_SPEECH_DBFS, out=margins)
            table[3, 1:] = floors + WEAK_MARGIN_DB
            thr = np.repeat(table, [first, *([U] * (len(upd) - 1)), n - upd[-1]], axis=1)
            self._thr = tuple(table[:, -1].tolist())
            floor_frame, thr_vad, thr_energy, thr_weak = thr
        else:
            floor_frame = None
            _, thr_vad, thr_energy, thr_weak = self._thr

        # Per-frame speech decision: webrtcvad plus level evidence, never a tone.
        # Code 2: strong evidence, can start an utterance; 1: weak evidence (webrtcvad just above
        # the floor), only keeps one going: it bridges the words masked by babble without
        # letting babble start one; 0: neither.
        vad_raw = self._run_vad(frames_i16, frames)
        strong = (vad_raw & (level > thr_vad)) | (level > thr_energy)
        code = strong.astype(np.int8)
        code += strong | (vad_raw & (level > thr_weak))
        tone_hits = ()
        if self._tones is not None:
            on = self._tones.tone_on(frames, power)
            code[on] = 0
            tone_hits = self._tones.process(g0, on)

        flags = []
        transitions = self._smoother.run_block(g0, code.tolist(), power.tolist(), flags)
        series[2, H:] = flags
        edges = []
        ch = self.channel
        for tr in transitions:
            if tr[0] == "start":
                edges.append(SpeechStart(ch, t_org + (tr[1] + 1) * fs, t_org + tr[2] * fs))
            elif tr[0] == "level":
                _, g, start = tr
                k = H + g - g0 + 1           # one past frame g in `series`
                w = self._level_frames
                floor = float(floor_frame[g - g0]) if floor_frame is not None else self._thr[0]
                edges.append(SpeechLevel(ch, t_org + (g + 1) * fs, t_org + start * fs,
                                         _active_dbfs(float(series[1, k - w:k].mean()), floor),
                                         round((g + 1 - start) * fs, 6), round(w * fs, 6)))
            else:
                _, g, start, last, mean_power = tr
                floor = float(floor_frame[g - g0]) if floor_frame is not None else self._thr[0]
                edges.append(SpeechEnd(ch, t_org + (g + 1) * fs, t_org + (last + 1) * fs,
                                       _active_dbfs(mean_power, floor), round((last + 1 - start) * fs, 6)))
        for g, name in tone_hits:
            edges.append(ToneDetected(ch, t_org + (g + 1) * fs, name))

        # Speech memory (utterance time and power over the last SPEECH_MEMORY_S) and the
        # line condition at the update points.
        if len(upd):
            W = self._speech_win
            sums = np.zeros((2, H + n + 1))
            np.cumsum(series[2], out=sums[0, 1:])
            np.cumsum(series[2] * series[1], out=sums[1, 1:])
            ends = np.arange(H + first + 1, H + n + 1, U)        # one past each update frame
            count, spow = (sums[:, ends] - sums[:, ends - W]).tolist()
            floors_l = floors.tolist()
            line = self._line
            for j, u in enumerate(upd):
                floor = floors_l[j]
                present = count[j] * fs >= SPEECH_PRESENT_S
                speech_dbfs = _active_dbfs(spow[j] / count[j], floor) if present else float(level[u])
                t = t_org + (g0 + u + 1) * fs
                new = line.update(t, floor, speech_dbfs, present)
                if new is not None:
                    edges.append(LineChange(ch, t, new, round(speech_dbfs, 2), round(floor, 2),
                                            round(speech_dbfs - floor, 2)))
            self._speech_level = speech_dbfs if present else None
        self._hist = series[:, n:]
        self._last_level = level[-1]
        return edges

    # -- live state for telemetry: read-only, derived on read from what the last block left --
    @property
    def speaking(self) -> bool:
        return self._smoother.speaking

    @property
    def condition(self) -> str:
        return self._line.condition

    @property
    def noise_dbfs(self) -> float:
        return SILENCE_DBFS if self._thr is None else self._thr[0]

    @property
    def level_dbfs(self) -> float:
        """Active level of the utterance in progress, else of the recent speech, else the
        level of the last frame."""
        if self._smoother.speaking:
            return _active_dbfs(self._smoother.current_power(), self.noise_dbfs)
        if self._speech_level is not None:
            return self._speech_level
        return float(self._last_level)

    @property
    def snr_db(self) -> float:
        return self.level_dbfs - self.noise_dbfs

    @property
    def peak_dbfs(self) -> float:
        return SILENCE_DBFS if self._peak is None else 20.0 * math.log10(max(self._peak, 1.0) / FULL_SCALE)

    def _run_vad(self, frames_i16: np.ndarray, frames: np.ndarray) -> np.ndarray:
        if self._decimator is not None:
            pcm = self._decimator.process(frames.ravel())
            np.clip(pcm, -32768.0, 32767.0, out=pcm)
            data = pcm.astype(np.int16).tobytes()
        elif self._gain is not None:
            data = frames.astype(np.int16).tobytes()
        else:
            data = frames_i16.tobytes()
        return np.array(self._vad_frames(data), dtype=bool)

    def _noise_floor(self, series: np.ndarray, upd: range, g0: int):
        """Floor (dBFS) over the `noise_window_s` ending at each update frame, and its spread:
        the dB between the 5th and 30th percentile frame, ~0.5 dB for steady noise and
        several dB for babble; speech rarely reaches that low part of the window."""
        W, H = self._noise_win, self._hist.shape[1]
        idx = np.arange(upd.start + H - W + 1, upd.stop + H - W + 1, upd.step)[:, None] + self._win_offsets
        win = series[0][idx]
        srt = np.sort(win, axis=1)
        if g0 + upd.start + 1 >= W:             # every window full: fixed ranks
            q05, q10, q30 = srt[:, self._ranks].T
            spread = q30 - q05
        else:                                    # start-up: ranks among the frames seen so far
            seen = np.minimum(np.arange(g0 + upd.start + 1, g0 + upd.stop + 1, upd.step), W)
            rows = np.arange(len(seen))
            q10 = srt[rows, (seen * NOISE_QUANTILE).astype(int)]
            spread = srt[rows, (seen * 0.30).astype(int)] - srt[rows, (seen * 0.05).astype(int)]
            # Until a third of the window is seen the spread is unknown: assume babble-like.
            spread = np.where(seen * 3 < W, np.maximum(spread, WARMUP_SPREAD_DB), spread)
        near = win <= (q10 + NOISE_SPREAD_DB)[:, None]       # +inf (not yet seen) never is
        floor_power = (series[1][idx] * near).sum(axis=1) / near.sum(axis=1)
        return power_to_dbfs(floor_power), spread


_NO_SAMPLES = np.zeros(0, dtype=np.int16)
_SINE_DB = 10.0 * math.log10(SINE_POWER_FS)


def _active_dbfs(mean_power: float, floor_dbfs: float) -> float:
    """Speech level with the noise power taken out (never more than 10 dB below the floor)."""
    noise = SINE_POWER_FS * 10.0 ** (floor_dbfs / 10.0)
    return 10.0 * math.log10(max(mean_power - noise, 0.1 * noise) / SINE_POWER_FS)
