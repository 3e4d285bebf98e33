"""`agent-volume`: keep your own volume constant, don't raise your voice (the README's service rules;
[000] #5, 003 客户声音无法听清, 001 忌提高音量).

The baseline is the duration-weighted mean active level of the agent's earlier utterances
in this call (loud ones excluded, so one outburst does not move it). The agent is loud
when the active level of the last second of an utterance still running (`SpeechLevel`,
every 0.5 s once it has lasted 1 s) is more than shout_db above the baseline: `agent.loud`
and the `lower_voice` cue come then, within 1.5 s of the loud speech's start, and the cue
stays while the agent stays loud. When that utterance ends, `agent.loud.end` gives its
final duration and level. An utterance too short for a `SpeechLevel` is judged on its
whole level when it ends (`agent.loud` then already carries the final duration).
"""

from __future__ import annotations

from firmware.station.rules.base import Rule

# Utterances shorter than this ("mm", "ok") neither set the baseline nor count as loud.
MIN_UTTERANCE_S = 0.3


class AgentVolume(Rule):
    id = "agent-volume"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.weight_s = 0.0
        self.level_sum = 0.0
        self.loud_start_t: float | None = None  # start of the running utterance, once loud

    def call_start(self, t: float, call) -> None:
        self.weight_s = self.level_sum = 0.0
        self.loud_start_t = None

    def _baseline(self) -> float | None:
        return self.level_sum / self.weight_s if self.weight_s > 0 else None

    def speech_start(self, edge) -> None:
        if edge.channel == "tx":
            self.loud_start_t = None

    def speech_level(self, edge) -> None:
        ctx = self.ctx
        baseline = self._baseline()
        if edge.channel != "tx" or baseline is None or ctx.call.on_hold:
            return
        if edge.active_level_dbfs <= baseline + ctx.profile.shout_db:
            return
        if self.loud_start_t is None:
            self.loud_start_t = edge.start_t
            ctx.emit(
                "agent.loud",
                edge.t,
                level_dbfs=round(edge.active_level_dbfs, 1),
                baseline_dbfs=round(baseline, 1),
                duration_s=round(edge.duration_s, 3),
            )
        ctx.brief_cue(edge.t, "lower_voice")  # again while still loud: the cue stays

    def speech_end(self, edge) -> None:
        if edge.channel != "tx":
            return
        ctx = self.ctx
        if self.loud_start_t is not None:
            self.loud_start_t = None
            ctx.emit(
                "agent.loud.end",
                edge.t,
                level_dbfs=round(edge.active_level_dbfs, 1),
                duration_s=round(edge.duration_s, 3),
            )
            return
        if edge.duration_s < MIN_UTTERANCE_S or ctx.call.on_hold:
            return
        level = edge.active_level_dbfs
        baseline = self._baseline()
        if baseline is not None and level > baseline + ctx.profile.shout_db:
            ctx.emit(
                "agent.loud",
                edge.t,
                level_dbfs=round(level, 1),
                baseline_dbfs=round(baseline, 1),
                duration_s=round(edge.duration_s, 3),
            )
            ctx.brief_cue(edge.t, "lower_voice")
            return
        self.weight_s += edge.duration_s
        self.level_sum += level * edge.duration_s
