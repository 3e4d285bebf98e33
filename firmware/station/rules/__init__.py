"""The service rules of the README's service rules, one small unit each, driven by the station.

A rule reads its parameters from `ctx.profile` when it needs them (so `apply_profile`
takes effect without a restart) and talks to the station only through the context:
`emit`, `violation`, `schedule`/`cancel`, `cue`/`brief_cue`, and the read-only call and
channel state. Hooks run in the order of `build_rules`; all are optional.
"""

from __future__ import annotations

from firmware.station.rules.answer import AnswerRings, GreetInTime
from firmware.station.rules.base import Rule
from firmware.station.rules.calendar import CallingHours, CallLength
from firmware.station.rules.dead_air import DeadAir
from firmware.station.rules.hangup import FarEndGone, HangupPause
from firmware.station.rules.hold import HoldLimit
from firmware.station.rules.overtalk import NoInterrupt
from firmware.station.rules.scripts import Scripts
from firmware.station.rules.volume import AgentVolume

__all__ = ["Rule", "build_rules"]


def build_rules(ctx) -> list[Rule]:
    # Hold first: the others ask ctx.call.on_hold. Scripts before dead-air: dead air is
    # not counted while a script's pauses run. Hang-up checks before hold ends the hold.
    return [HoldLimit(ctx), AnswerRings(ctx), GreetInTime(ctx), Scripts(ctx), DeadAir(ctx),
            NoInterrupt(ctx), AgentVolume(ctx), HangupPause(ctx), FarEndGone(ctx),
            CallLength(ctx), CallingHours(ctx)]
