"""Frame features that tell speech from office transients and other non-speech bursts.

webrtcvad and the level margins let short broadband bursts (a keyboard's clicks, a door, a
dropped pen) start utterances over a quiet, steady office noise: three 30 ms frames in a
row that each hold a click pass both. Three features, at most two FFTs and an
autocorrelation per frame, tell them from speech:

  * impulsiveness: the ratio of the loudest 1 ms of the frame to its mean power. A click
    puts most of a frame's energy into a millisecond or two (10-14 dB here); voiced speech
    spreads it over its pitch pulses (5-9 dB), unvoiced speech over the whole frame. A word
    that starts late in the frame is impulsive too, but not spectrally flat, so an
    impulsive frame counts as a click only when it is also fairly flat (CLICK_FLAT_DB);
  * spectral flatness over 300-3400 Hz (the telephone band, present at every rate): a
    click is flat (close to 0 dB), speech has formants and a tilt (-2 dB and below);
  * harmonicity: the peak of the normalised autocorrelation at the lags of a voice's pitch
    (2.5-16 ms). A very flat frame (FLAT_DB: a door, a dropped object, a burst of hiss) is a
    transient unless it is voiced.

`OnsetCheck.veto` computes these only for the frames passed to it (the analyser passes the
frames that would start an utterance), each from its own samples only, so the result does
not depend on how the audio is cut into blocks.
"""

from __future__ import annotations

import numpy as np

BAND_HZ = (300.0, 3400.0)
SUB_MS = 1.0  # impulsiveness: energy of the loudest sub-block of this length...
IMPULSIVE_DB = 10.0  # ...this far over the frame's mean: a click
FLAT_DB = -1.5  # spectral flatness above this (dB, 0 = white) over BAND_HZ: broadband
CLICK_FLAT_DB = -6.0  # an impulsive frame is a click only if at least this flat: a word starting
# inside the frame also puts its loudest millisecond far over the frame's mean, but has formants
PITCH_MS = (2.5, 16.0)
VOICED = 0.75  # normalised autocorrelation peak at a pitch lag: voiced speech (or music)


class OnsetCheck:
    """Per-frame transient test for frames of `frame_len` samples at `rate_hz`."""

    def __init__(self, rate_hz: int, frame_len: int):
        self.frame_len = frame_len
        self.sub = max(1, round(rate_hz * SUB_MS / 1000.0))
        self.n_sub = frame_len // self.sub
        self.n_fft = 1 << (frame_len - 1).bit_length()
        self.window = np.hanning(frame_len)
        freqs = np.fft.rfftfreq(self.n_fft, 1.0 / rate_hz)
        self.band = np.nonzero((freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1]))[0]
        self.n_band = len(self.band)
        self.lag_lo = max(1, round(rate_hz * PITCH_MS[0] / 1000.0))
        self.lag_hi = min(frame_len // 2, round(rate_hz * PITCH_MS[1] / 1000.0))
        self.n_fft_ac = 1 << (2 * frame_len - 1).bit_length()
        lags = np.arange(self.lag_lo, self.lag_hi + 1)
        self.overlap = 1.0 / (1.0 - lags / frame_len)  # unbiased: the overlap shrinks with the lag

    def impulsiveness_db(self, x: np.ndarray) -> np.ndarray:
        """Loudest SUB_MS sub-block over the mean, dB, of each row of float64 frames."""
        sub = x[:, : self.n_sub * self.sub].reshape(len(x), self.n_sub, self.sub)
        e = np.einsum("ijk,ijk->ij", sub, sub)
        return 10.0 * np.log10((e.max(axis=1) + 1.0) / (e.sum(axis=1) / self.n_sub + 1.0))

    def flatness_db(self, x: np.ndarray) -> np.ndarray:
        """Spectral flatness over BAND_HZ, dB (0 = white), of each row of float64 frames."""
        spec = np.abs(np.fft.rfft(x * self.window, self.n_fft, axis=1)[:, self.band]) ** 2 + 1.0
        # (x.sum(axis=1) / n is x.mean(axis=1), bit for bit, without mean's Python layer)
        nb = self.n_band
        return (10.0 / np.log(10.0)) * (np.log(spec).sum(axis=1) / nb - np.log(spec.sum(axis=1) / nb))

    def harmonicity(self, x: np.ndarray) -> np.ndarray:
        """Peak normalised autocorrelation at the lags of PITCH_MS, of each row of float64 frames."""
        xc = x - x.sum(axis=1, keepdims=True) / x.shape[1]
        f = np.fft.rfft(xc, self.n_fft_ac, axis=1)
        ac = np.fft.irfft(f.real * f.real + f.imag * f.imag, self.n_fft_ac, axis=1)
        return (ac[:, self.lag_lo : self.lag_hi + 1] * self.overlap).max(axis=1) / (ac[:, 0] + 1.0)

    def features(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(impulsiveness dB, flatness dB, harmonicity) of each row of int16 frames."""
        x = frames.astype(np.float64)
        return self.impulsiveness_db(x), self.flatness_db(x), self.harmonicity(x)

    def veto(self, frame: np.ndarray) -> bool:
        """True when one frame (its frame_len int16 samples, flat or as a (1, frame_len)
        array) looks like a transient, not speech. Each feature is computed only when the
        ones before it did not decide (most speech frames: flatness alone)."""
        x = frame.astype(np.float64).reshape(1, self.frame_len)
        flat = float(self.flatness_db(x)[0])
        if flat <= CLICK_FLAT_DB:
            return False
        if float(self.impulsiveness_db(x)[0]) > IMPULSIVE_DB:
            return True
        return flat > FLAT_DB and float(self.harmonicity(x)[0]) < VOICED
