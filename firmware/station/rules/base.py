"""The base of every rule: the hooks the station calls, each a no-op until a rule overrides it."""

from __future__ import annotations

from typing import ClassVar

from firmware.station.rules.context import RuleContext


class Rule:
    """Base: every hook is a no-op.

    `id` is the rule id reported in violations. `writes` names the shared state the rule
    may change (through its context's set_script/set_phase/add_dead_air/count_overtalk);
    `reads` names shared state other rules write that this rule reads, so it must run after
    them (see `firmware.station.rules.RULE_ORDER`).
    """

    id: ClassVar[str] = ""
    writes: ClassVar[frozenset[str]] = frozenset()
    reads: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, ctx: RuleContext):
        self.ctx = ctx

    def call_start(self, t: float, call) -> None: ...
    def speech_start(self, edge) -> None: ...
    def speech_level(self, edge) -> None: ...  # an utterance still running: its recent level
    def speech_end(self, edge) -> None: ...
    def line(self, edge) -> None: ...
    def farend_gone(self, t: float, tone: str) -> None: ...
    def hold(self, t: float, on: bool) -> None: ...
    def hook_on(self, t: float, call) -> None: ...  # the call is still open; before call.end
