"""The service rules of SPEC section 2, one small unit each, driven by the station.

A rule reads its parameters from `ctx.profile` when it needs them (so `apply_profile`
takes effect without a restart) and talks to the station only through the context:
`emit`, `violation`, `schedule`/`cancel`, `cue`/`brief_cue`, and the read-only call and
channel state. Hooks run in the order of `build_rules`; all are optional.
"""

from __future__ import annotations


class Rule:
    """Base: every hook is a no-op. `id` is the rule id reported in violations."""

    id = ""

    def __init__(self, ctx):
        self.ctx = ctx

    def call_start(self, t: float, call) -> None: ...
    def speech_start(self, edge) -> None: ...
    def speech_end(self, edge) -> None: ...
    def line(self, edge) -> None: ...
    def farend_gone(self, t: float, tone: str) -> None: ...
    def hold(self, t: float, on: bool) -> None: ...
    def hook_on(self, t: float, call) -> None: ...   # the call is still open; before call.end


def build_rules(ctx) -> list[Rule]:
    from .answer import AnswerRings, GreetInTime
    from .calendar import CallingHours, CallLength
    from .dead_air import DeadAir
    from .hangup import FarEndGone, HangupPause
    from .hold import HoldLimit
    from .overtalk import NoInterrupt
    from .scripts import Scripts
    from .volume import AgentVolume
    # Hold first: the others ask ctx.call.on_hold. Scripts before dead-air: dead air is
    # not counted while a script's pauses run. Hang-up checks before hold ends the hold.
    return [HoldLimit(ctx), AnswerRings(ctx), GreetInTime(ctx), Scripts(ctx), DeadAir(ctx),
            NoInterrupt(ctx), AgentVolume(ctx), HangupPause(ctx), FarEndGone(ctx),
            CallLength(ctx), CallingHours(ctx)]
