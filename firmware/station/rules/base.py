"""The base of every rule: the hooks the station calls, each a no-op until a rule overrides it."""

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
