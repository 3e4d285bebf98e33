"""Per-channel audio analysis: speech, level, noise floor, line condition and far-end tones.

One `ChannelAnalyzer` per channel (`tx` agent, `rx` customer) turns int16 blocks into the
sparse edges of `firmware.analysis.edges`. Levels are dBFS with a full-scale sine at 0 dBFS
RMS (see `firmware.analysis.levels`).

Speech decision per frame: webrtcvad alone calls steady noise and babble "speech" and misses
quiet speech (at aggressiveness 3 all of it below about -50 dBFS), so a frame is strong
speech evidence (it can start an utterance) when
  * webrtcvad says so AND its level is a margin above the noise floor, or
  * webrtcvad says so AND the mean power of the last SUSTAIN_FRAMES frames is a margin above
    the floor (speech at SNR 0-5 dB over steady noise: one frame is within the noise's
    fluctuation, three are not), or
  * its level alone is a larger margin above the floor (quiet speech webrtcvad misses), or
  * webrtcvad says so, the frame is near the floor, and the mean power of the last `LONG_S`
    is a margin above the floor (speech at SNR 5 dB over babble or music: half a second
    averages out most of the noise's bursts, so this margin is smaller than one frame's),
and never when it is a call-progress tone (rx), below `MIN_SPEECH_DBFS`, or explained by the
agent's echo (rx, see below). A frame that would start an utterance must also not look like
a transient (`firmware.analysis.features.OnsetCheck`: impulsive, or flat and unvoiced): a
keyboard's click train otherwise passes webrtcvad and the margins three frames in a row. Every margin grows with the floor's spread (the level
modulation of the noise): 2-4 dB over steady white or pink noise, 9-14 dB over babble,
whose bursts webrtcvad takes for speech. Weak evidence (webrtcvad speech near the floor, or
any frame just above it) only keeps an utterance going: it bridges the words masked by
noise without letting babble start one.

Two noise floors. The fast one sets the speech thresholds: re-estimated every ~0.25 s over
the last `noise_window_s`, the mean power of the frames within `NOISE_SPREAD_DB` of the
window's 10th-percentile level (minimum statistics), so it follows a noise that rises
within the window. A long talker lifts it towards the quiet parts of the speech, which
costs little there (the thresholds stay below the speech). The line floor decides the line
condition and the noise reported: the noise of the frames outside speech only (runs of
frames with no speech evidence and no echo), held while there are none or while they sit
far above the window's quietest frames (a talker's missed syllables), so speech never
lifts it; a noise that rises mid-call makes its own quiet frames once the fast floor has
followed it, or the fast floor itself once its window is steady (speech never is), a few
seconds later. The line condition uses the last `SPEECH_MEMORY_S` of
utterance frames: their mean power minus the noise power is the active speech level; its
SNR is that minus the line floor.

Echo and sidetone (rx with `echo=True`): `firmware.analysis.echo` estimates the tx->rx
coupling from the agent's frame levels (`ref`, the tx analyser's `block_ref`); an rx frame
within its margin of the echo predicted from tx is not customer speech, nor a noise frame.

Cost: the live service feeds one 30 ms frame per call, where numpy's fixed per-call cost,
not arithmetic, is what costs. So a block is a few numpy calls (exact integer frame
energies, webrtcvad, the tone Goertzel), the per-frame decisions are a Python loop over
floats, and windowed statistics run only at the update frames on slices of a history buffer.
All decisions happen at fixed frame indices and on values computed the same way whatever
the block size, so the edges do not depend on how the audio is cut into blocks (replay and
live give the same result).
"""

from __future__ import annotations

import dataclasses
import math
from array import array
from collections import deque

import numpy as np

from firmware.analysis.echo import EchoEstimator
from firmware.analysis.edges import Edge, LineChange, SpeechEnd, SpeechLevel, SpeechStart, ToneDetected
from firmware.analysis.features import OnsetCheck
from firmware.analysis.levels import (
    DC_PICK,
    DC_PICK_FRAMES,
    EPS_POWER,
    FULL_SCALE,
    SILENCE_DBFS,
    SINE_POWER_FS,
    DcOffset,
)
from firmware.analysis.linestate import LineState
from firmware.analysis.neural import EARLY_S, ECHO_AUDIBLE_DB, LATE_S, SileroStage, fuse
from firmware.analysis.tones import MIN_TONE_DBFS, ToneDetector
from firmware.analysis.vad import Decimator, Smoother, frame_classifier, make_vad, one_frame_classifier, vad_rate_for
from firmware.config.settings import AnalysisSettings
from firmware.errors import AudioFormatError

RATES_HZ = (8000, 16000, 32000, 48000)
FRAME_MS = (10, 20, 30)
UPDATE_S = 0.24  # noise floor / line condition re-evaluated this often
NOISE_QUANTILE = 0.10
NOISE_SPREAD_DB = 6.0
VAD_MARGIN_DB = 3.0  # webrtcvad speech must also be this far above the floor,
VAD_SPREAD_FACTOR = 1.2  # plus this many times the floor's spread (babble fluctuates)
SUSTAIN_FRAMES = 3  # webrtcvad speech whose mean power over this many frames is...
SUSTAIN_MARGIN_DB = 2.0  # ...this far above the floor, plus SUSTAIN_SPREAD_FACTOR times the
SUSTAIN_SPREAD_FACTOR = 1.0  # squared spread (little over steady noise, a lot over bursts), is speech too
ENERGY_MIN_MARGIN_DB = 3.0  # level-only speech: this far over steady noise, plus twice the spread
MAX_MARGIN_DB = 14.0  # the margins over the most non-stationary noise (babble)
LONG_S = 0.5  # webrtcvad speech whose mean power over this long is...
LONG_MARGIN_DB = 3.5  # ...this far above the floor, plus LONG_SPREAD_FACTOR times the spread,
LONG_SPREAD_FACTOR = 1.0  # starts an utterance: averaging out the noise's bursts (babble, music)
MIN_SPEECH_DBFS = -70.0
WEAK_VAD_MARGIN_DB = -1.0  # webrtcvad speech this far above the floor continues an utterance,
WEAK_MARGIN_DB = 1.0  # and so does any frame this far above it,
WEAK_SPREAD_FACTOR = 0.5  # both plus this many times the spread (babble is always near its floor)
TAIL_RANGE_DB = 30.0  # weak evidence this far below the recent speech peak does not count
PEAK_DECAY_DB_PER_S = 3.0  # how fast that peak is forgotten
MAX_WEAK_S = 3.0  # weak evidence holds an utterance at most this long after strong
HISTORY_CHUNK = 1024  # frames written to the history buffer between two compactions
WARMUP_SPREAD_DB = 7.5
SPEECH_MEMORY_S = 8.0  # speech this recent decides ok/low/noisy; after it, "silent"
SPEECH_PRESENT_S = 0.5  # at least this much utterance time in the memory
LEVEL_WINDOW_S = 1.0  # SpeechLevel: the level of an utterance's last second, once it
LEVEL_EVERY_S = 0.5  # has lasted that long and every half second after
LINE_QUANTILE = 0.5  # the line floor: noise frames around their median...
LINE_GUARD = 2  # ...that are this many quiet frames away from any speech evidence (_depth_level spells out 2)
STEADY_SPREAD_DB = 3.0  # a fast floor this steady is the line's noise, speech or not
LINE_MIN_S = 0.3  # noise frames (outside speech) the line floor needs in its window
LINE_DEPTH_DB = 12.0  # the noise frames' middle is at most this far above the window's quietest
LINE_DEPTH_QUANTILE = 0.02  # frames (this quantile of all its levels), or they are not the noise


class ChannelAnalyzer:
    """Speech, level, line condition and (rx) tones of one channel; see the module docstring.

    `process(t0, samples, ref=None)` takes int16 mono blocks of any length (contiguous in
    time; a jump re-anchors the clock) and returns the edges found in the block, sorted by
    `t`. With `echo=True` (the customer channel), `ref` is the agent channel analyser's
    `block_ref` for the same block: the echo of those frames is not customer speech.
    Live state for telemetry: `speaking`, `condition`, `level_dbfs`, `noise_dbfs`,
    `snr_db`, `peak_dbfs`, `echo_coupling_db`, `echo_delay_ms`.
    """

    def __init__(
        self,
        channel: str,
        rate_hz: int,
        frame_ms: int,
        analysis: AnalysisSettings,
        low_dbfs: float,
        noise_dbfs: float,
        snr_db: float,
        gain_db: float = 0.0,
        detect_tones: bool = False,
        echo: bool = False,
    ):
        if rate_hz not in RATES_HZ:
            raise AudioFormatError(f"{channel} audio: {rate_hz} Hz is not supported (need one of {RATES_HZ})")
        if frame_ms not in FRAME_MS:
            raise AudioFormatError(f"{channel} audio: {frame_ms} ms frames are not supported (need 10, 20 or 30)")
        self.channel = channel
        self.rate_hz = rate_hz
        self.frame_len = rate_hz * frame_ms // 1000
        self._inv_frame_len = 1.0 / self.frame_len
        self.frame_s = frame_ms / 1000.0
        self._half_frame_s = self.frame_s / 2
        self._gain = 10.0 ** (gain_db / 20.0) if gain_db else None
        self._vad = make_vad(analysis.vad_aggressiveness)
        self._vad_rate = vad_rate_for(rate_hz)
        self._vad_bytes = 2 * self._vad_rate * frame_ms // 1000
        self._decimator = Decimator(rate_hz // self._vad_rate) if self._vad_rate != rate_hz else None
        self._vad_frames = frame_classifier(self._vad, self._vad_rate, self._vad_bytes)
        self._vad_one = one_frame_classifier(self._vad, self._vad_rate)  # (pcm, samples) -> one frame's decision
        self._level_frames = round(LEVEL_WINDOW_S / self.frame_s)
        self._smoother = Smoother(
            int(np.ceil(analysis.onset_ms / frame_ms)),
            int(np.ceil(analysis.hangover_ms / frame_ms)),
            round(MAX_WEAK_S / self.frame_s),
            self._level_frames,
            round(LEVEL_EVERY_S / self.frame_s),
        )
        self._line = LineState(low_dbfs, noise_dbfs, snr_db, analysis.hysteresis_db, analysis.condition_hold_s)
        self._tones = ToneDetector(analysis.tone_plan, rate_hz, self.frame_len) if detect_tones else None
        self._echo = EchoEstimator(self.frame_s) if echo else None
        self._onset_check = OnsetCheck(rate_hz, self.frame_len)
        self._dc = DcOffset(self.frame_len)  # the sound card's DC offset, taken out before metering
        self._ones = np.ones(self.frame_len)  # (a frame's sum as a dot product)
        # second stage (firmware.analysis.neural): one speech probability per frame, fused below
        self._second = SileroStage(rate_hz, self.frame_len) if analysis.second_stage == "silero" else None
        self._late_frames = round(LATE_S / self.frame_s)  # how late the second stage's evidence is
        self._early_frames = round(EARLY_S / self.frame_s)  # how far back a start can go to the own evidence's
        self._own_run = 0  # frames of own evidence in a row outside an utterance (second stage only)
        self._update_every = max(1, round(UPDATE_S / self.frame_s))
        self._noise_win = max(self._update_every, round(analysis.noise_window_s / self.frame_s))
        self._speech_win = round(SPEECH_MEMORY_S / self.frame_s)
        self._line_min = max(2, round(LINE_MIN_S / self.frame_s))
        self._depth_rank = int(self._noise_win * LINE_DEPTH_QUANTILE)
        self._ranks = [int(self._noise_win * q) for q in (0.05, NOISE_QUANTILE, 0.30)]
        # Per-frame history, rows level dBFS / power / utterance flag / quiet flag, and the
        # noise-frame flags (quiet, and LINE_GUARD quiet frames on both sides: written
        # LINE_GUARD frames late), written one frame at a time at self._pos; the windows are
        # the slices that end there. When the buffer is full its last `_keep` frames move to
        # the front.
        self._keep = max(self._noise_win + LINE_GUARD, self._speech_win)
        # The rows are a numpy view of a flat `array` that the per-frame loop writes (an
        # `array` item costs a fraction of a numpy item); the noise flags are bytes read as
        # numpy bools (a mask without a comparison).
        self._hist = array("d", bytes(8 * 4 * (self._keep + HISTORY_CHUNK)))
        self._buf = np.frombuffer(self._hist).reshape(4, self._keep + HISTORY_CHUNK)
        self._flags = array("b", bytes(self._keep + HISTORY_CHUNK))
        self._noise_flags = np.frombuffer(self._flags, dtype=np.bool_)
        # row views: cheaper slices than the 2-D buffer's
        self._level_row, self._power_row, self._speech_row = self._buf[0], self._buf[1], self._buf[2]
        self._sorted_levels: list[float] = []  # the fast floor's window sorted, last update
        self._quiet_run = 0  # consecutive quiet frames up to the last one
        # running counts (exact: sums of 0/1) of the line floor's windows at the last frame:
        # noise frames among the last noise_win decided ones, utterance frames among the
        # last speech_win
        self._noise_count = 0.0
        self._speech_count = 0.0
        self._pos = 0
        self._pending = _NO_SAMPLES  # the partial frame carried to the next block
        self._origin_t: float | None = None
        self._next_frame = 0  # global index of the next whole frame
        self._thr: tuple[float, float, float, float, float, float, float] | None = (
            None  # (floor, vad, sustained, energy, weak-vad, weak, long-sustained threshold) dBFS
        )
        self._line_floor: float | None = None  # noise floor of the line condition (None: not yet known)
        self._spread = WARMUP_SPREAD_DB  # spread of the fast floor's window, last update
        self._speech_level: float | None = None
        self._last_t = float("-inf")
        self._recent = deque([0.0] * SUSTAIN_FRAMES, maxlen=SUSTAIN_FRAMES)
        n_long = max(SUSTAIN_FRAMES, round(LONG_S / self.frame_s))
        self._long = deque([0.0] * n_long, maxlen=n_long)  # powers of the last LONG_S
        self._peak_level = SILENCE_DBFS  # decaying peak level of strong speech evidence
        self._tone_guard = 0  # frames until the sustained-level evidence counts again after a tone
        self._last_block: np.ndarray | None = None  # the last block's frames, for the peak (derived on read)
        self._last_level = SILENCE_DBFS  # level of the last frame
        self._plain_pcm = self._decimator is None and self._gain is None  # webrtcvad reads the int16 frames
        self._flat_ok = self._gain is None and self._second is None  # see _analyse
        cap = self._buf.shape[1]  # the history rows, flat: row r at r * cap
        # the frame loop's constants, unpacked in one statement per block
        self._loop_consts = (
            self._update_every,
            self._keep,
            cap,
            1.0 / SUSTAIN_FRAMES,
            1.0 / len(self._long),
            PEAK_DECAY_DB_PER_S * self.frame_s,
            2 * LINE_GUARD + 1,
            (2 * cap, 3 * cap),
            (self._noise_win + LINE_GUARD, self._speech_win),
        )
        self.block_ref: tuple[list[float], list[bool]] = (
            [],
            [],
        )  # (level, speech evidence) per frame of the last block

    def set_thresholds(self, low_dbfs: float, noise_dbfs: float, snr_db: float) -> None:
        self._line.set_thresholds(low_dbfs, noise_dbfs, snr_db)

    def process(self, t0: float, samples: np.ndarray, ref=None) -> list[Edge]:
        if type(samples) is not np.ndarray:
            samples = np.asarray(samples)
        if samples.ndim != 1 or (samples.dtype is not _INT16 and samples.dtype != _INT16):
            raise AudioFormatError(
                f"{self.channel} audio: need mono int16 samples, got {samples.dtype} {samples.shape}"
            )
        pending, fl = self._pending, self.frame_len
        n_pending = len(pending)
        origin = self._origin_t
        if origin is None:
            self._origin_t = float(t0)
        else:
            expected = origin + (self._next_frame * fl + n_pending) / self.rate_hz
            if abs(t0 - expected) > self._half_frame_s:
                # A gap or overlap in the capture: drop the partial frame, re-anchor the clock.
                pending = self._pending = pending[:0]
                n_pending = 0
                self._origin_t = float(t0) - self._next_frame * self.frame_s
        x = np.concatenate((pending, samples)) if n_pending else samples
        n, rest = divmod(len(x), fl)
        if rest:
            self._pending = x[-rest:].copy()
            x = x[: n * fl]
        elif n_pending:
            self._pending = _NO_SAMPLES
        if n == 0:
            self.block_ref = ([], [])
            return []
        edges = self._analyse(x, n, ref)
        self._next_frame += n
        if not edges:
            return edges
        if len(edges) > 1:
            edges.sort(key=lambda e: e.t)
        if edges and edges[0].t < self._last_t:
            edges = [dataclasses.replace(e, t=max(e.t, self._last_t)) for e in edges]
        if edges:
            self._last_t = edges[-1].t
        return edges

    # -- one block of whole frames ---------------------------------------------------------
    # The live path feeds one 30 ms frame a call, where numpy's fixed cost per call (~1-2 us)
    # is what costs, not the arithmetic. So the block-wide work is a handful of numpy calls
    # (frame power and level, webrtcvad, tones), the per-frame decisions are a plain Python
    # loop over floats, and the windowed statistics run only at the update frames (every
    # UPDATE_S) on slices of the history buffer. Every value a decision compares is computed
    # the same way whatever the block size, so block size never changes a decision.
    def _analyse(self, x: np.ndarray, n: int, ref) -> list:
        """`x`: n whole frames of int16 samples, end to end."""
        self._last_block = x
        frames = None  # float32 samples after the gain (None: no gain)
        # The live path's one frame (no gain, no second stage) stays flat: `frames_i16` and
        # `f64` are then the frame's samples, not a (1, frame_len) view (one numpy call less
        # for the view, one for the row).
        flat = n == 1 and self._flat_ok
        frames_i16 = x if flat else x.reshape(n, self.frame_len)
        fl = self.frame_len
        # Each frame is metered without the sound card's DC offset (levels.DcOffset), in whole
        # counts: dc[i] for frame i, None when there is none (the usual case).
        dc: list[int] | None = None
        if flat:
            # Exact sums of squares (int16 squares summed in float64 stay integers below
            # 2**53, and so do they without whole counts of offset): the same value whatever
            # the block size.
            f64 = x.astype(_F64)  # (a dtype object: cheaper to resolve than np.float64)
            dco = self._dc
            off = dco.offset
            if DC_PICK[self._next_frame % DC_PICK_FRAMES]:
                dco.take(float(f64.dot(self._ones)))  # (exact: a sum of integers; a dot is numpy's cheapest sum)
            if off:
                dc = [off]
                f64 -= off
            power = [float(f64.dot(f64)) / fl]
        else:
            dc = self._dc.offsets(frames_i16, self._next_frame)
            dc_col = None if dc is None else np.array(dc, dtype=_F64)[:, None]  # (one per frame)
            if self._gain is None:
                f64 = frames_i16.astype(_F64)
                if dc_col is not None:
                    f64 -= dc_col
                power = [s / fl for s in np.einsum("ij,ij->i", f64, f64).tolist()]
            else:
                frames = frames_i16.astype(np.float32)
                if dc_col is not None:
                    frames -= dc_col
                frames *= self._gain
                np.clip(frames, -32768.0, 32767.0, out=frames)  # the calibrated ADC still clips
                f64 = frames.astype(np.float64)
                inv = self._inv_frame_len
                power = [s * inv for s in np.einsum("ij,ij->i", f64, f64).tolist()]
        log10, eps = math.log10, EPS_POWER
        if n == 1:
            level = [10.0 * log10(power[0] + eps) - _SINE_DB]
        else:
            level = [10.0 * log10(p + eps) - _SINE_DB for p in power]
        if flat and self._plain_pcm and self._vad_one is not None:
            # the live path: webrtcvad's C call directly, on the frame's own buffer (its C entry
            # point reads any C-contiguous buffer; no bytes copy)
            try:
                vad = [self._vad_one(x, self._vad_bytes >> 1)]
            except ValueError:
                if x.flags.c_contiguous:
                    raise
                vad = [self._vad_one(x.tobytes(), self._vad_bytes >> 1)]  # a strided view of a capture
        else:
            pcm = frames_i16.tobytes() if self._plain_pcm else self._pcm_for_vad(frames_i16, frames)
            if n == 1 and self._vad_one is not None:
                vad = [self._vad_one(pcm, self._vad_bytes >> 1)]
            else:
                vad = self._vad_frames(pcm)
        tone_on = None
        tone_hits: list[tuple[int, str]] = []
        if self._tones is not None:
            if flat:  # (quieter than MIN_TONE_DBFS: not a tone)
                on, tone_hits = self._tones.one_frame(
                    self._next_frame, f64 if level[0] >= MIN_TONE_DBFS else None, power[0]
                )
                tone_on = [on]
            else:
                if max(level) < MIN_TONE_DBFS:  # too quiet for a tone anywhere in the block
                    tone_on = [False] * n
                else:
                    tone_on = self._tones.tone_on_list(f64, power)
                tone_hits = self._tones.process_list(self._next_frame, tone_on)
        second_stage_p = (
            None
            if self._second is None
            else self._second.frame_probs(frames if frames is not None else frames_i16 if dc is None else f64)
        )
        if self._echo is not None:
            tx_level, tx_speech = ref if ref is not None and len(ref[0]) == n else ((), ())
        edges: list[Edge] = []
        ch, fs, t_org = self.channel, self.frame_s, self._origin_t
        assert t_org is not None, "process() sets the origin before the first block"
        U, keep, cap, inv_sustain, inv_long, peak_decay, noise_run, rows, wins = self._loop_consts
        row_speaking, row_quiet = rows
        noise_span, speech_win = wins  # a frame leaves the counts this many frames later
        noise_count, speech_count = self._noise_count, self._speech_count
        g0, buf, hist, flags = self._next_frame, self._buf, self._hist, self._flags
        smoother, echo, onset_check = self._smoother, self._echo, self._onset_check
        if self._thr is not None:  # (None only before frame 0, which updates it)
            floor, thr_vad, thr_sustain, thr_energy, thr_weak_vad, thr_weak, thr_long = self._thr
        recent = self._recent  # powers of the last SUSTAIN_FRAMES frames, oldest first
        long_p = self._long  # powers of the last LONG_S, oldest first
        if dc is not None:  # the onset check looks at the samples without the offset too
            x = (f64 if frames is None else frames_i16 - dc_col).reshape(-1)
        tone_guard, peak, quiet_run, pos = self._tone_guard, self._peak_level, self._quiet_run, self._pos
        own_run, early_frames = self._own_run, self._early_frames
        # the level the echo is compared with besides the floor: how far under the floor it still
        # counts (`fuse`: Silero hears it); without the second stage the floor itself
        audible_db = 0.0 if second_stage_p is None else ECHO_AUDIBLE_DB
        late_frames = self._late_frames
        late = 0  # (set per frame only with the second stage)
        if self._thr is not None:
            echo_floor = floor - audible_db
        evidence = []
        sine_db = _SINE_DB
        for i in range(n):
            g = g0 + i
            if pos == cap:
                buf[:, :keep] = buf[:, pos - keep : pos]
                self._noise_flags[:keep] = self._noise_flags[pos - keep : pos]
                pos = keep
            lv, p = level[i], power[i]
            hist[pos] = lv
            hist[cap + pos] = p
            update = g % U == 0
            if update:  # the thresholds change only here
                self._pos = pos + 1  # (the update methods read the windows that end here)
                self._thr = self._thresholds(g)
                floor, thr_vad, thr_sustain, thr_energy, thr_weak_vad, thr_weak, thr_long = self._thr
                echo_floor = floor - audible_db
            speaking = smoother.speaking  # (as it was before this frame's step, below)
            recent.append(p)  # (deques of fixed length: the oldest drops out)
            long_p.append(p)
            v = vad[i]
            # Sustained level (not over a tone's edge) starts utterances; inside one it is only
            # weak evidence, or the speech just before would carry it past its end.
            sustained = v and not tone_guard and 10.0 * log10(sum(recent) * inv_sustain + eps) - sine_db > thr_sustain
            strong = (v and lv > thr_vad) or lv > thr_energy or (sustained and not speaking)
            # Half-second sustained level starts utterances only, like the three-frame one.
            if v and not strong and not tone_guard and not speaking and lv > thr_weak_vad:
                strong = 10.0 * log10(sum(long_p) * inv_long + eps) - sine_db > thr_long
            if strong and not speaking and onset_check.veto(x[i * fl : (i + 1) * fl]):
                strong = False  # a click or bang cannot start an utterance (features.py)
            # Weak evidence: near the floor, but not the faint tail of louder speech (webrtcvad's
            # overhang over a quiet line), which would only push the utterance's end late.
            peak = lv if strong and lv > peak else peak - peak_decay
            weak = strong or ((sustained or (v and lv > thr_weak_vad) or lv > thr_weak) and lv > peak - TAIL_RANGE_DB)
            if echo is not None:  # the echo the agent's recent frames can put on this frame
                e = echo.frame(
                    lv,
                    tx_level[i] if tx_level else SILENCE_DBFS,
                    tx_speech[i] if tx_speech else False,
                    echo_floor,
                )
                explained = lv <= e + echo.margin_db  # the agent's own echo explains the frame
            if second_stage_p is not None:  # the second stage's probability (firmware.analysis.neural.fuse)
                own = weak  # the analyser's own evidence, before the second stage's (weak includes strong)
                strong, weak = fuse(
                    strong,
                    weak,
                    second_stage_p[i],
                    lv - floor,
                    speaking,
                    echo is not None and not explained and e > echo_floor,
                )
                late = 0 if own else late_frames  # evidence of the second stage alone is late (neural.LATE_S)
            quiet = not weak
            if echo is not None:
                if explained:
                    strong = weak = own = False
                if e > floor:  # echo covers the noise: not a noise frame
                    quiet = False
                if update:
                    echo.update(floor)
            if tone_guard:
                tone_guard -= 1
            if tone_on is not None and tone_on[i]:
                strong = weak = own = False
                tone_guard = SUSTAIN_FRAMES + 1
            if second_stage_p is not None:
                own_run = own_run + 1 if own and not speaking else 0
            evidence.append(strong)
            code = 2 if strong else (1 if weak else 0)
            if code or speaking or smoother.run:
                tr = smoother.step(g, code, p, late)
                speaking = smoother.speaking
            else:  # no evidence, no utterance, no onset run: the step would change nothing
                tr = None
            hist[row_speaking + pos] = speaking
            speech_count += speaking
            if g >= speech_win:
                speech_count -= hist[row_speaking + pos - speech_win]
            hist[row_quiet + pos] = quiet
            # the noise-frame flag of this frame (0 until its guard frames are seen) and, now
            # that its last guard frame is, of the frame LINE_GUARD back
            flags[pos] = 0
            quiet_run = quiet_run + 1 if quiet else 0
            if quiet_run >= noise_run:
                flags[pos - LINE_GUARD] = 1
                noise_count += 1.0
            if g >= noise_span:
                noise_count -= flags[pos - noise_span]
            if tr is not None:
                if tr[0] == "start":
                    start = tr[2]
                    if own_run > g - start + 1:  # (0 without the second stage)
                        # the analyser's own evidence began before the second stage's: the
                        # utterance starts there, at most EARLY_S earlier (neural, "Early starts")
                        early = max(g - own_run + 1, start - early_frames)
                        smoother.backdate(early, float(buf[1, pos - (g - early) : pos - (g - start)].sum()))
                        start = early
                    edges.append(SpeechStart(ch, t_org + (g + 1) * fs, t_org + start * fs))
                elif tr[0] == "level":  # still talking: the active level of the last LEVEL_WINDOW_S
                    w = self._level_frames
                    mean_power = float(buf[1, pos + 1 - w : pos + 1].sum()) / w  # = .mean(), without its Python layer
                    edges.append(
                        SpeechLevel(
                            ch,
                            t_org + (g + 1) * fs,
                            t_org + tr[2] * fs,
                            _active_dbfs(mean_power, self._floor_for_level()),
                            round((g + 1 - tr[2]) * fs, 6),
                            round(w * fs, 6),
                        )
                    )
                else:
                    _, _, start, last, mean_power = tr
                    edges.append(
                        SpeechEnd(
                            ch,
                            t_org + (g + 1) * fs,
                            t_org + (last + 1) * fs,
                            _active_dbfs(mean_power, self._floor_for_level()),
                            round((last + 1 - start) * fs, 6),
                        )
                    )
            if update:
                self._noise_count, self._speech_count = noise_count, speech_count
                change = self._line_update(g, lv)
                if change is not None:
                    edges.append(change)
            pos += 1
        for g, name in tone_hits:
            edges.append(ToneDetected(ch, t_org + (g + 1) * fs, name))
        self._tone_guard = tone_guard
        self._quiet_run = quiet_run
        self._own_run = own_run
        self._noise_count, self._speech_count = noise_count, speech_count
        self._peak_level = peak
        self._pos = pos
        self.block_ref = (level, evidence)
        self._last_level = level[-1]
        return edges

    def _pcm_for_vad(self, frames_i16: np.ndarray, frames) -> bytes:
        if self._decimator is not None:
            pcm = self._decimator.process(frames.ravel() if frames is not None else frames_i16.ravel())
            np.clip(pcm, -32768.0, 32767.0, out=pcm)
            return pcm.astype(np.int16).tobytes()
        if self._gain is not None:
            return frames.astype(np.int16).tobytes()
        return frames_i16.tobytes()

    def _thresholds(self, g: int) -> tuple:
        """Noise floor and speech thresholds at update frame g (frames up to g): the floor
        is the mean power of the frames within NOISE_SPREAD_DB of the window's 10th
        percentile; its spread (5th to 30th percentile, ~0.5 dB for steady noise and several
        dB for babble) widens the margins."""
        W = self._noise_win
        seen = g + 1 if g < W else W  # (min(), spelled out: the builtin costs more)
        pos = self._pos
        win = self._level_row[pos - seen : pos]
        srt = win.copy()  # (copy and sort in place: cheaper calls than np.sort, same values)
        srt.sort()
        # the smallest few as Python floats for the line floor's depth (_depth_level)
        self._sorted_levels = srt[: self._depth_rank + 1 + LINE_GUARD].tolist()
        if seen == W:
            r05, r10, r30 = self._ranks
        else:
            r05, r10, r30 = int(seen * 0.05), int(seen * NOISE_QUANTILE), int(seen * 0.30)
        q10 = srt.item(r10)
        spread = srt.item(r30) - srt.item(r05)
        if seen * 3 < W:  # until a third of the window is seen: assume babble-like
            spread = max(spread, WARMUP_SPREAD_DB)
        self._spread = spread
        near_max = q10 + NOISE_SPREAD_DB
        near = win <= near_max
        n_near = np.count_nonzero(near)
        floor_power = float(self._power_row[pos - seen : pos].dot(near)) / float(n_near)
        floor = 10.0 * math.log10(floor_power + EPS_POWER) - _SINE_DB
        # max(floor + min(margin, MAX_MARGIN_DB), MIN_SPEECH_DBFS), spelled out (the builtins
        # cost more than the comparisons)
        top, low = MAX_MARGIN_DB, MIN_SPEECH_DBFS
        m_vad = VAD_MARGIN_DB + VAD_SPREAD_FACTOR * spread
        m_sustain = SUSTAIN_MARGIN_DB + SUSTAIN_SPREAD_FACTOR * spread * spread
        m_energy = ENERGY_MIN_MARGIN_DB + 2.0 * spread
        m_long = LONG_MARGIN_DB + LONG_SPREAD_FACTOR * spread
        t_vad = floor + (top if top < m_vad else m_vad)
        t_sustain = floor + (top if top < m_sustain else m_sustain)
        t_energy = floor + (top if top < m_energy else m_energy)
        t_long = floor + (top if top < m_long else m_long)
        return (
            floor,
            low if low > t_vad else t_vad,
            low if low > t_sustain else t_sustain,
            low if low > t_energy else t_energy,
            floor + WEAK_VAD_MARGIN_DB + WEAK_SPREAD_FACTOR * spread,
            floor + WEAK_MARGIN_DB + WEAK_SPREAD_FACTOR * spread,
            low if low > t_long else t_long,
        )

    def _line_update(self, g: int, level: float):
        """Line floor, speech memory and line condition at update frame g; a LineChange or None.

        The line floor is the noise of the noise frames, the middle of runs of quiet frames
        (no speech evidence, no echo) at least LINE_GUARD frames from any speech evidence,
        over the noise window: their mean power around their median. While the window holds
        too few of them the fast floor stands in when its window is steady (speech never is),
        else the floor is held (a long talker), so speech never lifts it.

        A noise is there all the time, so the window's quietest frames are never far below
        its middle (tools/bench's corpus at SNR 0-20 dB, 95% of windows: white and pink
        noise within 1.5 dB, office noise 4 dB, babble 10 dB, music on hold 13.5 dB). Noise
        frames whose middle is more than LINE_DEPTH_DB above the window's LINE_DEPTH_QUANTILE
        level are a talker's quiet syllables and word tails that the speech thresholds missed
        (over digital silence, a quiet line or the talker's own pauses): the floor is held.
        """
        pos, W, G = self._pos, self._noise_win, LINE_GUARD
        seen = g + 1 if g < self._keep else self._keep
        if seen >= W + G:
            # the noise frames among frames pos-W-G .. pos-G-1 (kept by the frame loop).
            # While the buffer holds fewer than W + 2G frames before pos, none (as the product
            # of the W + 2G quiet flags this replaces, whose slice was empty then).
            count = int(self._noise_count) if pos >= W + 2 * G else 0  # = count_nonzero(is_noise)
            noise, med = False, 0.0
            if count >= self._line_min:
                lv = self._level_row[pos - W - G : pos - G]
                is_noise = self._noise_flags[pos - W - G : pos - G]
                sel = lv[is_noise]
                sel.sort()
                med = sel.item(int(count * LINE_QUANTILE))
                noise = med <= self._depth_level() + LINE_DEPTH_DB  # else quiet speech
            if noise:
                lo, hi = med - NOISE_SPREAD_DB, med + NOISE_SPREAD_DB
                lo_ok, hi_ok = sel.item(0) >= lo, sel.item(-1) <= hi  # every noise frame is above lo / below hi
                if lo_ok and hi_ok:  # every noise frame is near the middle (steady noise)
                    near, n_near = is_noise, count
                else:  # (lv >= lo) & (lv <= hi) & is_noise, without the bound every noise frame meets
                    near = (lv <= hi) if lo_ok else (lv >= lo) if hi_ok else (lv >= lo) & (lv <= hi)
                    near &= is_noise
                    n_near = int(np.count_nonzero(near))
                fp = float(self._power_row[pos - W - G : pos - G].dot(near)) / float(n_near)
                self._line_floor = 10.0 * math.log10(fp + EPS_POWER) - _SINE_DB
            elif self._spread <= STEADY_SPREAD_DB:
                # No noise frames, but the quiet part of the window is steady: that is the
                # noise (a noise that rose under continuous speech; speech is never this steady).
                assert self._thr is not None  # set at frame 0, before any update
                self._line_floor = self._thr[0]
        S = g + 1 if g < self._speech_win else self._speech_win
        n_speech = float(self._speech_count)  # the 0/1 flags of buf[2, pos - S : pos], summed
        fs = self.frame_s
        floor = self._line_floor
        present = n_speech * fs >= SPEECH_PRESENT_S
        if present:
            spow = float(self._speech_row[pos - S : pos].dot(self._power_row[pos - S : pos]))
            speech_dbfs = _active_dbfs(spow / n_speech, self._floor_for_level())
        else:
            speech_dbfs = level
        self._speech_level = speech_dbfs if present else None
        assert self._origin_t is not None
        t = self._origin_t + (g + 1) * fs
        new = self._line.update(t, floor, speech_dbfs, present)
        if new is None:
            return None
        fl = floor if floor is not None else SILENCE_DBFS
        return LineChange(self.channel, t, new, round(speech_dbfs, 2), round(fl, 2), round(speech_dbfs - fl, 2))

    def _depth_level(self) -> float:
        """The LINE_DEPTH_QUANTILE level (rank `_depth_rank`) of the line floor's window,
        frames pos-W-G .. pos-G-1, from the fast floor's window pos-W .. pos-1 sorted at this
        update frame (`_sorted_levels`): the same multiset with the last G levels taken out
        and the G before the window put in. Only its k+1 smallest matter, so this takes the
        window's k+1+G smallest, removes the last G frames' levels that are among them (a
        level at or under their largest is), adds the G earlier ones and sorts: the same
        value as sorting the line window, without a numpy call."""
        k, pos, W, hist = self._depth_rank, self._pos, self._noise_win, self._hist
        cand = self._sorted_levels[: k + 3]  # (spelled out for LINE_GUARD = 2)
        v = hist[pos - 1]
        if v <= cand[-1]:
            cand.remove(v)
        v = hist[pos - 2]
        if v <= cand[-1]:
            cand.remove(v)
        cand.append(hist[pos - W - 1])
        cand.append(hist[pos - W - 2])
        cand.sort()
        return cand[k]

    def _floor_for_level(self) -> float:
        """The noise power taken out of speech levels: the line floor once known."""
        if self._line_floor is not None:
            return self._line_floor
        return SILENCE_DBFS if self._thr is None else self._thr[0]

    # -- live state for telemetry: read-only, derived on read from what the last block left --
    @property
    def speaking(self) -> bool:
        return self._smoother.speaking

    @property
    def condition(self) -> str:
        return self._line.condition

    @property
    def noise_dbfs(self) -> float:
        return self._floor_for_level()

    @property
    def echo_coupling_db(self):
        """Estimated agent->customer channel coupling in dB (None: no echo analysis, or no
        consistent echo seen yet)."""
        return None if self._echo is None else self._echo.coupling_db

    @property
    def echo_delay_ms(self):
        return None if self._echo is None else self._echo.delay_ms

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
        """Peak of the last block (after the gain)."""
        block = self._last_block
        if block is None:
            return SILENCE_DBFS
        peak = float(max(int(block.max()), -int(block.min())))
        if self._gain is not None:
            peak = min(peak * self._gain, 32768.0)
        return 20.0 * math.log10(max(peak, 1.0) / FULL_SCALE)


_NO_SAMPLES = np.zeros(0, dtype=np.int16)
_INT16 = np.dtype(np.int16)
_F64 = np.dtype(np.float64)
_SINE_DB = 10.0 * math.log10(SINE_POWER_FS)


def _active_dbfs(mean_power: float, floor_dbfs: float) -> float:
    """Speech level with the noise power taken out (never more than 10 dB below the floor)."""
    noise = SINE_POWER_FS * 10.0 ** (floor_dbfs / 10.0)
    return 10.0 * math.log10(max(mean_power - noise, 0.1 * noise) / SINE_POWER_FS)
