"""The service rules of the README's service rules, one small unit each, driven by the station.

A rule reads its parameters from `ctx.profile` when it needs them (so `apply_profile`
takes effect without a restart) and talks to the station only through its own
`context.RuleContext`: outputs (`emit`, `violation`, `schedule`/`cancel`, `cue`/`brief_cue`),
read-only call and channel state, and the writes its class declares (`Rule.writes`).
Hooks run in the order of `RULE_ORDER`; all are optional.
"""

from __future__ import annotations

from firmware.station.rules.answer import AnswerRings, GreetInTime
from firmware.station.rules.base import Rule
from firmware.station.rules.calendar import CallingHours, CallLength
from firmware.station.rules.context import RuleContext
from firmware.station.rules.dead_air import DeadAir
from firmware.station.rules.hangup import FarEndGone, HangupPause
from firmware.station.rules.hold import HoldLimit
from firmware.station.rules.overtalk import NoInterrupt
from firmware.station.rules.scripts import Scripts
from firmware.station.rules.volume import AgentVolume

__all__ = ["RULE_ORDER", "Rule", "RuleContext", "build_rules", "order_problems"]

# The order every hook runs in. Hold first: its hold.start/hold.end come before what the
# other rules emit at the same instant. Every rule that writes shared state runs before the
# rules that read it (`writes`/`reads`, checked by `order_problems` in the tests): Scripts
# sets the script and the phase before DeadAir (no dead air while a script's pauses run),
# HangupPause (a script's hang-up step allows hanging up) and FarEndGone (no call-back cue
# once the call is closing) look at them.
RULE_ORDER: tuple[type[Rule], ...] = (
    HoldLimit,
    AnswerRings,
    GreetInTime,
    Scripts,
    DeadAir,
    NoInterrupt,
    AgentVolume,
    HangupPause,
    FarEndGone,
    CallLength,
    CallingHours,
)


def order_problems(order: tuple[type[Rule], ...] = RULE_ORDER) -> list[str]:
    """Every place where a rule runs before a rule that writes what it reads."""
    problems = []
    for i, reader in enumerate(order):
        for writer in order[i + 1 :]:
            for what in sorted(reader.reads & writer.writes):
                problems.append(f"{reader.id} reads {what}, which {writer.id} writes, but runs first")
    return problems


def build_rules(station) -> list[Rule]:
    """One instance of every rule in RULE_ORDER, each with its own context on `station`."""
    return [cls(RuleContext(station, cls.id, cls.writes)) for cls in RULE_ORDER]
