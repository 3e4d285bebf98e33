"""`no-interrupt`: the agent must not cut in while the customer is talking (the README's service rules;
[003] 第二十一条(一)(五), 001 忌与用户抢话).

A `tx` onset while `rx` speech has been running for at least overtalk_min_s is a cut-in
only if the customer was still talking when the agent started: the customer's speech end
is known only a VAD hangover later, so the decision waits for that `rx` SpeechEnd (end
after the agent's start = overtalk) or for the hangover to pass with `rx` still speaking.
"""

from __future__ import annotations

from firmware.station.rules.base import Rule
from firmware.station.rules.context import OVERTALK

TIMER = "overtalk"


class NoInterrupt(Rule):
    id = "no-interrupt"
    writes = frozenset({OVERTALK})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.pending: tuple[float, float] | None = None  # (agent start_t, customer speaking_s)

    def call_start(self, t: float, call) -> None:
        self.pending = None

    def speech_start(self, edge) -> None:
        ctx = self.ctx
        if edge.channel != "tx" or not ctx.speaking["rx"] or ctx.call.on_hold:
            return
        speaking_s = edge.start_t - ctx.speech_start_t["rx"]
        if speaking_s < ctx.profile.overtalk_min_s:
            return
        self.pending = (edge.start_t, speaking_s)
        ctx.schedule(TIMER, edge.start_t + ctx.hangover_s, self._confirm)

    def speech_end(self, edge) -> None:
        if edge.channel != "rx" or self.pending is None:
            return
        if edge.end_t > self.pending[0]:
            self._confirm(edge.t)
        else:  # the customer had finished before the agent started: a normal turn
            self.ctx.cancel(TIMER)
            self.pending = None

    def _confirm(self, t: float) -> None:
        ctx = self.ctx
        ctx.cancel(TIMER)
        if self.pending is None:
            return
        _start_t, speaking_s = self.pending
        self.pending = None
        ctx.count_overtalk()
        ctx.emit("overtalk", t, duration_s=round(speaking_s, 3))
        ctx.brief_cue(t, "overtalk")

    def hook_on(self, t: float, call) -> None:
        self.pending = None
