"""The scripted rules `silent-call`, `low-volume` and `noisy-line` (the README's service rules; standards
000 #3-6, 002 四(四)1-3, 003 附件 无声电话 / 客户声音无法听清, 004).

One script runs at a time (a line script replaces silent-call, noisy-line replaces
low-volume; none starts once a hang-up step was reached). Each step is due once `rx` has had no speech for `pause_s`,
counted from the later of the end of the agent's last utterance (SpeechEnd.end_t, the
true end, not its detection), the customer's last utterance and the previous step; while
either side is speaking nothing is due. The line scripts' first step ("please speak
louder", "the line is noisy") is due as soon as nobody is speaking. The last step is the
hang-up-allowed one (`final`, cue `hangup_ok`); hanging up before it is a violation of
the script's rule. Customer speech ends `silent-call`; a line back to `ok` (or customer
speech at a normal level) ends `low-volume`/`noisy-line`; a far-end hang-up ends any.
On a noisy line the customer's VAD speech is mostly the noise itself, so `noisy-line`
counts its pauses from the agent's speech only.
"""

from __future__ import annotations

from firmware.station.call import CHANNELS, CLOSING, CONVERSATION
from firmware.station.rules.base import Rule
from firmware.station.rules.context import PHASE, SCRIPT

SILENT, LOW, NOISY = "silent-call", "low-volume", "noisy-line"
TIMER = "script:step"
# A quiet customer utterance shorter than this (a cough, a breath) does not start low-volume.
MIN_LOW_UTTERANCE_S = 0.4


class Scripts(Rule):
    id = "scripts"
    writes = frozenset({SCRIPT, PHASE})

    def __init__(self, ctx):
        super().__init__(ctx)
        self._reset()

    def _reset(self) -> None:
        self.name: str | None = None
        self.step = 0
        self.final = False
        self.start_t = 0.0
        self.step_t: float | None = None
        self.greeted = False
        self.rx_heard = False

    # ----- triggers -------------------------------------------------------------------------
    def call_start(self, t: float, call) -> None:
        self._reset()
        # Joining a call already under way: its greeting was before our time.
        self.greeted = call.mid_call

    def speech_start(self, edge) -> None:
        ctx = self.ctx
        if edge.channel == "rx":
            self.rx_heard = True
            if self.name == SILENT:
                self._end(edge.t)
            elif self.name == LOW:
                ctx.cancel(TIMER)  # the customer is talking: not silent yet
            return
        if self.name and not self.final:
            ctx.cancel(TIMER)
            ctx.cue(edge.t, "pause", False)
            ctx.cue(edge.t, "speak", False)

    def speech_end(self, edge) -> None:
        ctx = self.ctx
        if edge.channel == "tx":
            if not self.greeted:
                self.greeted = True
                if not self.rx_heard and not ctx.call.farend_gone:
                    self._begin(edge.t, SILENT)
                    return
            if self.name and not self.final:
                self._arm(edge.t)
            return
        if self.name == LOW and edge.active_level_dbfs >= ctx.profile.low_dbfs:
            self._end(edge.t)
        elif (
            self.name is None
            and edge.active_level_dbfs < ctx.profile.low_dbfs
            and ctx.line_state["rx"] != "noisy"
            and edge.duration_s >= MIN_LOW_UTTERANCE_S
            and not ctx.call.on_hold
            and not ctx.call.farend_gone
        ):
            self._begin(edge.t, LOW)
        elif self.name == LOW and not self.final:
            self._arm(edge.t)

    def line(self, edge) -> None:
        if edge.channel != "rx" or self.ctx.call.farend_gone:
            return
        if edge.condition == "ok" and self.name in (LOW, NOISY):
            self._end(edge.t)
        elif self.final:
            return  # the call is closing: the hang-up step stands
        elif edge.condition == "low" and self.name in (None, SILENT):
            self._begin(edge.t, LOW)
        elif edge.condition == "noisy" and self.name in (None, SILENT, LOW):
            # Noise comes first: quiet "speech" on a noisy line is mostly the noise itself.
            self._begin(edge.t, NOISY)

    def farend_gone(self, t: float, tone: str) -> None:
        if self.name:
            self._end(t)  # the customer hung up: nothing left to say

    def hold(self, t: float, on: bool) -> None:
        if not self.name or self.final:
            return
        if on:
            self.ctx.cancel(TIMER)
        else:
            self.step_t = t  # the pause restarts once the customer is back
            self._arm(t)

    def hook_on(self, t: float, call) -> None:
        if self.name and not self.final:
            n = len(self.ctx.profile.scripts[self.name])
            self.ctx.violation(self.name, t, f"hung up at step {self.step} of {n} of the {self.name} script")

    # ----- the script -----------------------------------------------------------------------
    def _begin(self, t: float, name: str) -> None:
        if self.name:
            self._end(t)
        self.name, self.step, self.final, self.start_t, self.step_t = name, 0, False, t, None
        self.ctx.set_script({"script": name, "step": 0, "prompt": None, "final": False})
        self._arm(t)

    def _anchor_t(self) -> float:
        times = [
            self.start_t if self.name != SILENT else 0.0,
            self.ctx.call.last_speech_end_t(("tx",) if self.name == NOISY else CHANNELS),
            self.step_t,
        ]
        return max(t for t in times if t is not None)

    def _arm(self, t: float) -> None:
        ctx = self.ctx
        if ctx.speaking["tx"] or (ctx.speaking["rx"] and self.name != NOISY) or ctx.call.on_hold:
            return  # due only after everyone has stopped
        first_line_step = self.step == 0 and self.name != SILENT
        gap_s = 0.0 if first_line_step else ctx.profile.pause_s
        due_t = self._anchor_t() + gap_s
        if due_t <= ctx.now:
            self._step(ctx.now)
            return
        ctx.schedule(TIMER, due_t, self._step)
        ctx.cue(t, "speak", False)
        ctx.cue(t, "pause")

    def _step(self, t: float) -> None:
        ctx = self.ctx
        steps = ctx.profile.scripts[self.name]
        self.step += 1
        self.step_t = t
        prompt = steps[min(self.step, len(steps)) - 1].as_dict()
        self.final = self.step >= len(steps)
        script = {"script": self.name, "step": self.step, "prompt": prompt, "final": self.final}
        ctx.set_script(script)
        ctx.emit("script.step", t, **script)
        ctx.cue(t, "pause", False)
        if self.final:
            ctx.cue(t, "speak", False)
            ctx.cue(t, "hangup_ok")
            ctx.set_phase(CLOSING)
        else:
            ctx.cue(t, "speak")
            # If the agent says nothing, the next step is due pause_s after this one.
            ctx.schedule(TIMER, t + ctx.profile.pause_s, self._step)

    def _end(self, t: float) -> None:
        ctx = self.ctx
        ctx.cancel(TIMER)
        for cue in ("pause", "speak", "hangup_ok"):
            ctx.cue(t, cue, False)
        if ctx.call.phase == CLOSING and not ctx.call.farend_gone:
            ctx.set_phase(CONVERSATION)
        ctx.set_script(None)
        self.name, self.step, self.final, self.step_t = None, 0, False, None
