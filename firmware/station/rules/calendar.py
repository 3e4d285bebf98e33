"""`call-length` and `calling-hours`: return visits stay within max_call_s and are made only
in the profile's calling windows (the README's service rules; [001] 二 and 电话回访的礼仪 4)."""

from __future__ import annotations

from firmware.station.rules.base import Rule


class CallLength(Rule):
    id = "call-length"

    def call_start(self, t: float, call) -> None:
        ctx = self.ctx
        max_call_s = ctx.profile.max_call_s
        if max_call_s > 0:
            ctx.schedule("call-length", t + max_call_s, lambda at: ctx.cue(at, "wrap_up"))


class CallingHours(Rule):
    id = "calling-hours"

    def call_start(self, t: float, call) -> None:
        ctx = self.ctx
        hours = ctx.profile.calling_hours
        if not hours or call.mid_call:
            return
        minute = ctx.local_minute(t)
        if any(a <= minute < b for a, b in hours):
            return
        ctx.cue(t, "outside_hours")
        windows = ", ".join(f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in hours)
        hh, mm = divmod(int(minute), 60)
        ctx.violation(self.id, t, f"call at {hh:02d}:{mm:02d} local time, outside the calling hours {windows}")
