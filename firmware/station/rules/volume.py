"""`agent-volume`: keep your own volume constant, don't raise your voice (the README's service rules;
[000] #5, 003 客户声音无法听清, 001 忌提高音量).

The baseline is the duration-weighted mean active level of the agent's earlier utterances
in this call (loud ones excluded, so one outburst does not move it); an utterance more
than shout_db above it is `agent.loud`. Levels are known when the utterance ends.
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

    def call_start(self, t: float, call) -> None:
        self.weight_s = self.level_sum = 0.0

    def speech_end(self, edge) -> None:
        if edge.channel != "tx" or edge.duration_s < MIN_UTTERANCE_S or self.ctx.call.on_hold:
            return
        ctx = self.ctx
        level = edge.active_level_dbfs
        if self.weight_s > 0:
            baseline = self.level_sum / self.weight_s
            if level > baseline + ctx.profile.shout_db:
                ctx.emit("agent.loud", edge.t, level_dbfs=round(level, 1), baseline_dbfs=round(baseline, 1),
                         duration_s=round(edge.duration_s, 3))
                ctx.brief_cue(edge.t, "lower_voice")
                return
        self.weight_s += edge.duration_s
        self.level_sum += level * edge.duration_s
