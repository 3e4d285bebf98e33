"""`answer-rings` and `greet-in-time`: how the call was picked up (the README's service rules;
[003] 第二十条(一) and 附件 问候客户, 000 #15)."""

from __future__ import annotations

from firmware.station.rules.base import Rule


class AnswerRings(Rule):
    """Answered after more than max_rings rings: apologise for the wait."""

    id = "answer-rings"

    def call_start(self, t: float, call) -> None:
        ctx = self.ctx
        max_rings = ctx.profile.max_rings
        if call.mid_call or call.rings <= max_rings:
            return
        ctx.brief_cue(t, "apologize_wait", ctx.profile.apologize_s)
        ctx.violation(self.id, t, f"answered after {call.rings} rings (at most {max_rings}); apologise for the wait")


class GreetInTime(Rule):
    """The agent must start speaking within greet_s of hook off (greet_s = 0: not checked).

    The check runs `onset_s` after the deadline: a greeting that began just before it is
    only detected after the VAD onset, and must not count as late.
    """

    id = "greet-in-time"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.due_t: float | None = None  # set while the greeting is awaited
        self.reported = False

    def call_start(self, t: float, call) -> None:
        ctx = self.ctx
        greet_s = ctx.profile.greet_s
        self.due_t, self.reported = None, False
        if call.mid_call or greet_s <= 0 or ctx.speaking["tx"]:
            return
        self.due_t = t + greet_s
        ctx.cue(t, "greet")
        ctx.schedule("greet", self.due_t + ctx.onset_s, self._late)

    def speech_start(self, edge) -> None:
        if edge.channel != "tx" or self.due_t is None:
            return
        ctx = self.ctx
        ctx.cancel("greet")
        ctx.cue(edge.t, "greet", False)
        if edge.start_t > self.due_t and not self.reported:
            self._violate(edge.t)
        self.due_t = None

    def _late(self, t: float) -> None:
        self._violate(t)  # the cue stays until the agent speaks

    def _violate(self, t: float) -> None:
        self.reported = True
        self.ctx.violation(self.id, t, f"no greeting within {self.ctx.profile.greet_s:g} s of answering")

    def hook_on(self, t: float, call) -> None:
        self.due_t = None
