"""`dead-air`: both channels silent, not on hold, after the customer has spoken; announce
the wait at dead_air_s ("请稍等,我正在帮您…"), a system delay at dead_air_busy_s ("系统忙")
(the README's service rules; [002] 四(二)1-2). The gap runs from the true end of the customer's
utterance (or the end of a hold) while the agent is silent; silence after the agent's own
words is the customer's turn, not a wait. It is reported as a `dead_air` event
with its duration when it ends, if it lasted at least dead_air_s. Not counted while a
script's pauses run or after the far end hung up; a gap ended by hanging up counts only
beyond the closing pause (hangup_pause_s).
"""

from __future__ import annotations

from firmware.station.rules.base import Rule
from firmware.station.rules.context import DEAD_AIR, SCRIPT

WAIT, BUSY = "dead_air:wait", "dead_air:busy"


class DeadAir(Rule):
    id = "dead-air"
    writes = frozenset({DEAD_AIR})
    reads = frozenset({SCRIPT})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.gap_start_t: float | None = None

    def call_start(self, t: float, call) -> None:
        self.gap_start_t = None

    def _eligible(self) -> bool:
        ctx = self.ctx
        call = ctx.call
        return (
            call.spoken["rx"]
            and not call.on_hold
            and not call.farend_gone
            and ctx.script is None
            and not ctx.speaking["tx"]
            and not ctx.speaking["rx"]
        )

    def _open(self, start_t: float) -> None:
        if self.gap_start_t is not None or not self._eligible():
            return
        ctx = self.ctx
        self.gap_start_t = start_t
        ctx.schedule(WAIT, start_t + ctx.profile.dead_air_s, lambda t: ctx.cue(t, "say_wait"))
        ctx.schedule(BUSY, start_t + ctx.profile.dead_air_busy_s, lambda t: ctx.cue(t, "say_busy"))

    def _close(self, t: float, end_t: float) -> None:
        if self.gap_start_t is None:
            return
        ctx = self.ctx
        ctx.cancel(WAIT)
        ctx.cancel(BUSY)
        ctx.cue(t, "say_wait", False)
        ctx.cue(t, "say_busy", False)
        duration_s = max(0.0, end_t - self.gap_start_t)
        self.gap_start_t = None
        if duration_s >= ctx.profile.dead_air_s:
            ctx.add_dead_air(duration_s)
            ctx.emit("dead_air", t, duration_s=round(duration_s, 3))

    def speech_start(self, edge) -> None:
        self._close(edge.t, edge.start_t)

    def speech_end(self, edge) -> None:
        # Only silence after the customer's words is a wait the agent owes an answer to;
        # after the agent's own words it is the customer's turn (or the closing pause).
        if edge.channel == "rx":
            self._open(edge.end_t)

    def hold(self, t: float, on: bool) -> None:
        if on:
            self._close(t, t)
        else:
            self._open(t)

    def line(self, edge) -> None:
        # A line script's pauses are not dead air; once it ends the silence from here counts.
        if self.ctx.script is not None:
            self._close(edge.t, edge.t)
        else:
            self._open(edge.t)

    def farend_gone(self, t: float, tone: str) -> None:
        self._close(t, t)

    def hook_on(self, t: float, call) -> None:
        # The silence before hanging up is the required closing pause, not a wait the
        # customer was left in: only what goes beyond hangup_pause_s counts.
        if self.gap_start_t is not None:
            self.gap_start_t = min(self.gap_start_t + self.ctx.profile.hangup_pause_s, t)
        self._close(t, t)
