"""`hold-limit`: mute on = hold; warn at hold_warn_s, limit (and violation) at hold_limit_s,
thank the customer on unmute (the README's service rules; [003] 第二十一条(三), 000 #21)."""

from __future__ import annotations

from firmware.station.rules.base import Rule


class HoldLimit(Rule):
    id = "hold-limit"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.start_t = 0.0

    def hold(self, t: float, on: bool) -> None:
        ctx = self.ctx
        call = ctx.call
        if on:
            self.start_t = t
            ctx.emit("hold.start", t, after_s=round(t - call.start_t, 3))
            ctx.cue(t, "hold")
            ctx.schedule("hold:warn", t + ctx.profile.hold_warn_s, self._warn)
            ctx.schedule("hold:limit", t + ctx.profile.hold_limit_s, self._limit)
            return
        ctx.cancel("hold:warn")
        ctx.cancel("hold:limit")
        ctx.emit("hold.end", t, duration_s=round(t - self.start_t, 3))
        # Hanging up ends the hold too; the call's end then clears this cue with the others.
        ctx.brief_cue(t, "thank_waiting")
        for cue in ("hold", "hold_warn", "hold_over"):
            ctx.cue(t, cue, False)

    def _warn(self, t: float) -> None:
        ctx = self.ctx
        ctx.emit("hold.warn", t, after_s=round(t - self.start_t, 3))
        ctx.cue(t, "hold_warn")

    def _limit(self, t: float) -> None:
        ctx = self.ctx
        limit_s = t - self.start_t
        ctx.emit("hold.limit", t, after_s=round(limit_s, 3))
        ctx.cue(t, "hold_over")
        ctx.violation(self.id, t, f"customer on hold longer than {limit_s:g} s; offer a call-back")
