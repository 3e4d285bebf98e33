"""`hangup-pause` and `far-end-gone`: how a call ends (the README's service rules; [000] #33-34,
001 注意:等待客户挂电话后再挂电话, 003 第二十三条(三) and 附件 突然掉线)."""

from __future__ import annotations

from firmware.station.call import CONVERSATION, ON_HOLD
from firmware.station.rules.base import Rule
from firmware.station.rules.context import PHASE, SCRIPT


def _script_done(ctx) -> bool:
    """A script reached its hang-up step: the standard's own procedure allows hanging up."""
    return bool(ctx.script and ctx.script["final"])


class HangupPause(Rule):
    """Hook on less than hangup_pause_s after the last speech on either channel, unless the
    far end already hung up; profiles with wait_customer_hangup also require that, unless
    a script's hang-up step was reached.

    The end of speech is known to one analysis frame, so a hang-up within one frame of the
    required pause complies; the message shows the measured pause with as many decimals as
    it takes to show it is short (`4.96 s`, never `5.0 s (at least 5 s)`)."""

    id = "hangup-pause"
    reads = frozenset({SCRIPT})

    def hook_on(self, t: float, call) -> None:
        ctx = self.ctx
        if call.farend_gone or call.mid_call:
            return
        # On a noisy line the customer's VAD "speech" is mostly noise: count the agent's only.
        channels = ("tx",) if ctx.line_state["rx"] == "noisy" else ("tx", "rx")
        if any(ctx.speaking[ch] for ch in channels):
            last_t = t
        else:
            last_t = call.last_speech_end_t(channels)
        if last_t is None:
            return  # nothing was said: there was no goodbye to pause after
        gap_s = t - last_t
        pause_s = ctx.profile.hangup_pause_s
        if gap_s < pause_s - ctx.frame_s - TIME_EPS_S:
            ctx.violation(
                self.id, t, f"hung up {short_of(gap_s, pause_s)} s after the last speech (at least {pause_s:g} s)"
            )
        elif ctx.profile.wait_customer_hangup and call.spoken["rx"] and not _script_done(ctx):
            ctx.violation(self.id, t, "hung up before the customer did")


TIME_EPS_S = 1e-6  # clock sums are not exact: 10.0 + 4.97 - 10.0 < 4.97


def short_of(value: float, limit: float) -> str:
    """`value` (< limit) with the fewest decimals (1 to 3) that still read below `limit`."""
    for decimals in (1, 2):
        text = f"{value:.{decimals}f}"
        if float(text) < limit:
            return text
    return f"{value:.3f}"


class FarEndGone(Rule):
    """Call-progress tone on rx during the conversation (or a hold): the call was cut off
    before it was wrapped up, so the agent must call back at once with an apology. Audio
    cannot tell a goodbye from a cut-off, so only a call already closing (the script's
    hang-up step reached) or still unanswered by voice is exempt."""

    id = "far-end-gone"
    reads = frozenset({PHASE})

    def farend_gone(self, t: float, tone: str) -> None:
        if self.ctx.call.phase in (CONVERSATION, ON_HOLD):
            self.ctx.cue(t, "call_back")
