"""Line condition of one channel: silent / ok / low / noisy, with hysteresis and a hold time.

The analyser feeds `update` a few times a second with the current noise floor, the recent
active speech level and whether there was enough speech recently. Precedence: `noisy`
(noise floor above `noise_dbfs`, or speech SNR below `snr_db`) wins over `low` (speech
whose active level is below `low_dbfs`), because on a noisy line the customer's volume
cannot be judged and the noisy-line script is the one that applies. A noise floor of None
(no noise frames seen yet, e.g. a talker who started without a lead-in) is not noisy. Each threshold has a
band of +-hysteresis_db/2 that favours the current condition, and a new condition must
persist `hold_s` before it is reported, so one loud cough or a short gap does not flap.
"""

from __future__ import annotations


class LineState:
    def __init__(self, low_dbfs: float, noise_dbfs: float, snr_db: float, hysteresis_db: float, hold_s: float):
        self.low_dbfs, self.noise_dbfs, self.snr_db = low_dbfs, noise_dbfs, snr_db
        self.half_band_db = hysteresis_db / 2.0
        self.hold_s = hold_s
        self.condition = "silent"  # initial condition; not reported as a change
        self._pending: str | None = None
        self._pending_since = 0.0

    def set_thresholds(self, low_dbfs: float, noise_dbfs: float, snr_db: float) -> None:
        self.low_dbfs, self.noise_dbfs, self.snr_db = low_dbfs, noise_dbfs, snr_db

    def candidate(self, noise_dbfs: float | None, speech_dbfs: float, speech_present: bool) -> str:
        """The condition these measurements call for, given the current one (hysteresis)."""
        cur, h = self.condition, self.half_band_db
        # In each test the band is shifted so that staying needs less than entering.
        noisy_h = -h if cur == "noisy" else h
        if noise_dbfs is None:  # no noise frames seen yet: the speech alone decides
            noise_dbfs = float("-inf")
        if noise_dbfs > self.noise_dbfs + noisy_h:
            return "noisy"
        if not speech_present:
            return "silent"
        if speech_dbfs - noise_dbfs < self.snr_db - noisy_h:
            return "noisy"
        low_h = h if cur == "low" else -h
        if speech_dbfs < self.low_dbfs + low_h:
            return "low"
        return "ok"

    def update(self, t: float, noise_dbfs: float | None, speech_dbfs: float, speech_present: bool):
        """Returns the new condition when it changes at `t` (after the hold), else None."""
        cand = self.candidate(noise_dbfs, speech_dbfs, speech_present)
        if cand == self.condition:
            self._pending = None
            return None
        if cand != self._pending:
            self._pending, self._pending_since = cand, t
        if t - self._pending_since >= self.hold_s:
            self.condition, self._pending = cand, None
            return cand
        return None
