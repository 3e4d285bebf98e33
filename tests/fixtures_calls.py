"""Two-channel test calls built from the Asterisk prompts: place prompts on tx (the agent) and
rx (the customer), record each prompt's true speech span, and make a replay `Scenario`."""

from datetime import datetime

import numpy as np

from firmware.analysis.levels import frame_power, power_to_dbfs
from firmware.sim import speech as sp
from firmware.sim.scenario import Scenario

AGENT_PROMPTS = (
    "dir-welcome",
    "please-try-call-later",
    "sorry-youre-having-problems",
    "vm-leavemsg",
    "pls-hold-while-try",
    "check-number-dial-again",
)
CUSTOMER_PROMPTS = (
    "vm-nobodyavail",
    "something-terribly-wrong",
    "cannot-complete-as-dialed",
    "conf-onlyperson",
    "all-circuits-busy-now",
)


class PromptCall:
    """The two channels of a call of `seconds` at `rate_hz`, built by placing prompts."""

    def __init__(self, seconds, rate_hz, agent_dbfs, customer_dbfs):
        self.rate_hz = rate_hz
        self.levels_dbfs = {"tx": agent_dbfs, "rx": customer_dbfs}
        self.n = int(seconds * rate_hz)
        self.tracks = {"tx": np.zeros(self.n), "rx": np.zeros(self.n)}
        self.spans = {"tx": [], "rx": []}

    def say(self, ch, prompt, start_s, level_dbfs=None):
        """Place `prompt` on `ch` at `start_s`; returns its true speech span (first/last 10 ms
        frame within 30 dB of the prompt's loudest frame)."""
        x = sp.scale_to(sp.load_prompt(prompt, self.rate_hz), level_dbfs or self.levels_dbfs[ch], self.rate_hz)
        self.add(ch, x, start_s)
        m = self.rate_hz // 100
        db = power_to_dbfs(frame_power(x[: len(x) // m * m].reshape(-1, m)))
        on = np.flatnonzero(db > db.max() - 30.0)
        span = (start_s + on[0] * 0.01, start_s + (on[-1] + 1) * 0.01)
        self.spans[ch].append(span)
        return span

    def add(self, ch, x, start_s=0.0):
        i = int(start_s * self.rate_hz)
        self.tracks[ch][i : i + len(x)] += x[: self.n - i]

    def scenario(self, tx, rx, inputs, start="2026-11-23T10:45:00+08:00") -> Scenario:
        scen = Scenario(
            path=None,
            rate_hz=self.rate_hz,
            tx=tx,
            rx=rx,
            inputs=sorted(inputs, key=lambda x: x[0]),
            start=datetime.fromisoformat(start),
            audio_s=self.n / self.rate_hz,
        )
        scen.duration_s = max([scen.audio_s] + [t for t, _, _ in inputs])
        return scen
