"""WebRTC VAD per frame, the decimation it needs, and onset/hangover smoothing.

webrtcvad accepts 8/16/32/48 kHz, but at 48 kHz one 30 ms frame costs ~10x a 16 kHz frame
(it runs its own long resampling filter), and it only looks at 80 Hz-4 kHz anyway. So 32 and
48 kHz captures are decimated to 16 kHz here with a short polyphase FIR: aliases only matter
where they land below 4 kHz (from 12 kHz and up), which lets the filter be 4 taps per phase
and cost ~1.5 us per 30 ms frame. scipy.signal would do the same, but the station has no
other use for scipy (a large import on the Pi, against a 60 MB RSS budget), and soxr's
streaming resampler returns a varying number of samples per block (measured: 0, 526, 525,
... for 30 ms blocks at HQ), which would misalign VAD frames from level frames.
"""

from __future__ import annotations

import functools

import numpy as np
import webrtcvad

VAD_RATES_HZ = (8000, 16000)  # rates fed to webrtcvad; others are decimated to 16 kHz


def vad_rate_for(rate_hz: int) -> int:
    """The rate webrtcvad runs at for a capture rate."""
    return rate_hz if rate_hz in VAD_RATES_HZ else 16000


def make_vad(aggressiveness: int) -> webrtcvad.Vad:
    return webrtcvad.Vad(int(aggressiveness))


def frame_classifier(vad: webrtcvad.Vad, rate_hz: int, frame_bytes: int):
    """A function: PCM bytes of whole frames -> list of webrtcvad decisions, one per frame.

    Calls webrtcvad's C entry point directly when it has one: the Python wrapper's argument
    checks cost ~0.5 us a frame, a sixth of the VAD itself, and the frames here are always
    whole and of a valid length."""
    process = getattr(webrtcvad, "_webrtcvad", None)
    process = getattr(process, "process", None)
    handle = getattr(vad, "_vad", None)
    n = frame_bytes // 2
    if process is None or handle is None:
        is_speech = vad.is_speech
        return lambda data: [
            is_speech(mv[i : i + frame_bytes], rate_hz)
            for mv in (memoryview(data),)
            for i in range(0, len(data), frame_bytes)
        ]

    def classify(data):
        if len(data) == frame_bytes:  # the live path: one frame a block
            return [process(handle, rate_hz, data, n)]
        mv = memoryview(data)
        return [process(handle, rate_hz, mv[i : i + frame_bytes], n) for i in range(0, len(data), frame_bytes)]

    return classify


def one_frame_classifier(vad: webrtcvad.Vad, rate_hz: int):
    """webrtcvad's C entry point with the handle and rate bound: `f(pcm_bytes, n_samples)` ->
    the decision for one whole frame, with no Python frame in between (the live path's one
    frame a block); None when this webrtcvad has no C entry point (use `frame_classifier`)."""
    process = getattr(getattr(webrtcvad, "_webrtcvad", None), "process", None)
    handle = getattr(vad, "_vad", None)
    if process is None or handle is None:
        return None
    return functools.partial(process, handle, rate_hz)


class Decimator:
    """Stateful integer-factor decimator (float32 in, float32 out), exact n/M samples out.

    Linear-phase windowed-sinc FIR, `taps_per_phase * factor` taps, cutoff at 0.9x the new
    Nyquist. Its group delay (~0.2 ms) is far below a frame, so VAD frame k still lines up
    with level frame k. Block boundaries do not change the output (history is carried).
    """

    def __init__(self, factor: int, taps_per_phase: int = 4):
        self.factor = factor
        self.groups = taps_per_phase
        n_taps = factor * taps_per_phase
        n = np.arange(n_taps) - (n_taps - 1) / 2.0
        cutoff = 0.9 / factor  # fraction of the input Nyquist
        h = np.sinc(n * cutoff) * np.kaiser(n_taps, 5.0)
        h = (h / h.sum())[::-1]  # reversed: we correlate, y[n] = sum h[k] x[nM - k]
        # Split into `groups` consecutive chunks of `factor` taps for the reshape trick.
        self._h = [h[g * factor : (g + 1) * factor].astype(np.float32) for g in range(self.groups)]
        self._hist = np.zeros((self.groups - 1) * factor, dtype=np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Decimate `x` (length a multiple of factor); returns len(x)//factor samples."""
        m = self.factor
        ext = np.concatenate((self._hist, x.astype(np.float32, copy=False)))
        self._hist = ext[len(ext) - len(self._hist) :]
        rows = ext.reshape(-1, m)  # row r = samples r*m .. r*m+m-1
        n_out = len(x) // m
        y = rows[0:n_out] @ self._h[0]
        for g in range(1, self.groups):
            y += rows[g : g + n_out] @ self._h[g]
        return y


class Smoother:
    """Onset/hangover smoothing of per-frame speech decisions into utterances.

    An utterance starts once `onset_frames` consecutive frames are strong speech (SpeechStart is
    stamped at the end of that frame; its true start is the first of them), and ends once
    `hangover_frames` consecutive frames are not (stamped at the end of that frame; the
    true end is the end of the last speech frame). Weak evidence keeps an utterance going,
    but at most `max_weak_frames` (0 = no limit) after its last strong frame: then it ends
    there, so noise that looks a little like speech (babble) cannot hold an utterance open
    after the talker stopped. The utterance's mean power is taken over all its frames from
    start to last speech frame (P.56 idea: the level while speech is active, short pauses
    inside words included, the trailing hangover excluded).

    Evidence from a detector that is late (`step`'s `late_frames`: the second stage's
    probability stays high for a few frames after the voice stops) keeps an utterance going
    like any other, but vouches for speech only up to that many frames back: the reported
    end is not pushed past it. The mean power still counts every frame up to the last one
    with evidence (a few quiet frames more at most).
    """

    __slots__ = (
        "onset_frames",
        "hangover_frames",
        "max_weak_frames",
        "speaking",
        "run",
        "gap",
        "start_frame",
        "last_speech_frame",
        "last_strong_frame",
        "end_frame",
        "strong_end_frame",
        "power_sum",
        "gap_power",
        "weak_power",
        "run_power",
        "level_frames",
        "level_every",
        "next_level",
    )

    def __init__(
        self,
        onset_frames: int,
        hangover_frames: int,
        max_weak_frames: int = 0,
        level_frames: int = 0,
        level_every: int = 1,
    ):
        self.onset_frames = max(1, onset_frames)
        self.hangover_frames = max(1, hangover_frames)
        self.max_weak_frames = max(0, max_weak_frames)
        # With level_frames > 0: a ("level", frame, start_frame) transition once an utterance
        # has lasted level_frames frames, and every level_every frames after that.
        self.level_frames = max(0, level_frames)
        self.level_every = max(1, level_every)
        self.next_level = 0
        self.speaking = False
        self.run = 0  # consecutive speech frames while not speaking
        self.gap = 0  # consecutive non-speech frames while speaking
        self.start_frame = 0
        self.last_speech_frame = 0
        self.last_strong_frame = 0
        self.end_frame = 0  # the last frame the evidence vouches for (late evidence: earlier)
        self.strong_end_frame = 0  # the same, of strong evidence
        self.power_sum = 0.0  # power of the utterance's frames so far (gap included)
        self.gap_power = 0.0  # power of the trailing non-speech frames, removed at the end
        self.weak_power = 0.0  # power of the frames after the last strong one
        self.run_power = 0.0  # power of the onset run, credited once it starts

    def run_block(self, first_frame: int, raw: list, power: list, flags: list) -> list:
        """Feed one block of decisions; `first_frame` is the global index of raw[0].

        A decision is 0 (not speech), 1 (weak: keeps an utterance going) or 2 (strong: can
        also start one).

        Appends the smoothed state of every frame (True while in an utterance) to `flags`.
        Returns transitions as tuples: ("start", frame, start_frame),
        ("level", frame, start_frame) (with level_frames, see __init__) and
        ("end", frame, start_frame, last_speech_frame, mean_power); last_speech_frame is the
        last frame the evidence vouches for (see the class docstring).
        """
        out = []
        step, append = self.step, flags.append
        for g, code, p in zip(range(first_frame, first_frame + len(raw)), raw, power, strict=False):
            tr = step(g, code, p)
            if tr is not None:
                out.append(tr)
            append(self.speaking)
        return out

    def step(self, g: int, code: int, p: float, late_frames: int = 0):
        """One frame of `run_block` (decision `code`, power `p`): its transition or None.
        `late_frames`: the evidence comes from a detector that far behind the audio (see the
        class docstring); 0 for the analyser's own."""
        if self.speaking:
            self.power_sum += p
            if code:
                self.gap = 0
                self.gap_power = 0.0
                self.last_speech_frame = g
                vouched = g - late_frames  # (late evidence never moves an end back)
                if vouched > self.end_frame:
                    self.end_frame = vouched
                if code > 1:
                    self.last_strong_frame = g
                    if vouched > self.strong_end_frame:
                        self.strong_end_frame = vouched
                    self.weak_power = 0.0
                else:
                    self.weak_power += p
            else:
                self.gap += 1
                self.gap_power += p
                self.weak_power += p
                if self.gap >= self.hangover_frames:
                    self.speaking = False
                    self.run = 0
                    start, last = self.start_frame, self.last_speech_frame
                    return ("end", g, start, self.end_frame, (self.power_sum - self.gap_power) / (last - start + 1))
            # (a strong frame is 0 frames from the last strong one: under any weak limit)
            if code < 2 and self.max_weak_frames and g - self.last_strong_frame >= self.max_weak_frames:
                self.speaking = False
                self.run = 0
                start, last = self.start_frame, self.last_strong_frame
                return ("end", g, start, self.strong_end_frame, (self.power_sum - self.weak_power) / (last - start + 1))
            if self.level_frames and g >= self.next_level:
                self.next_level = g + self.level_every
                return ("level", g, self.start_frame)
        elif code > 1:
            if self.run == 0:
                self.run_power = 0.0
            self.run += 1
            self.run_power += p
            if self.run >= self.onset_frames:
                self.speaking = True
                self.gap = 0
                self.start_frame = g - self.run + 1
                self.last_speech_frame = self.last_strong_frame = self.end_frame = self.strong_end_frame = g
                self.power_sum, self.gap_power, self.weak_power = self.run_power, 0.0, 0.0
                self.next_level = self.start_frame + self.level_frames - 1
                return ("start", g, self.start_frame)
        else:
            self.run = 0
        return None

    def backdate(self, start_frame: int, power: float) -> None:
        """Date the running utterance's start earlier, at `start_frame` (the analyser's own
        evidence began there; firmware.analysis.neural, "Early starts"), its mean power
        counting `power`, the summed power of the frames gained."""
        if self.speaking and start_frame < self.start_frame:
            self.power_sum += power
            self.next_level -= self.start_frame - start_frame
            self.start_frame = start_frame

    def current_power(self) -> float:
        """Mean power of the utterance in progress (0 when none)."""
        if not self.speaking:
            return 0.0
        n = self.last_speech_frame - self.start_frame + 1
        return (self.power_sum - self.gap_power) / n
