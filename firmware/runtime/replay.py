"""`replay`: the station pipeline on recorded audio with a virtual clock, as fast as the CPU allows.

The same `Pipeline` as the live service; only the clock (scenario time) and the sources
(WAV files and scripted inputs) differ. Blocks of `block_s` keep the analysis vectorised;
timers still fire at their exact deadlines because the station fires them before every
edge and input, and at each block's end.
"""

from __future__ import annotations

import time

from firmware.config.profiles import Profile
from firmware.config.settings import Settings
from firmware.protocol.envelope import EmitFn, SeqSource
from firmware.station.pipeline import Pipeline

REPLAY_BLOCK_S = 0.96  # a multiple of every frame length (10/20/30 ms)


def replay(
    scenario,
    settings: Settings,
    profile: Profile,
    emit: EmitFn,
    seq: SeqSource | None = None,
    block_s: float = REPLAY_BLOCK_S,
) -> Pipeline:
    """Run a loaded scenario (hal.scenario.Scenario) through the pipeline; events go to `emit`."""
    settings = settings.replace(audio={"rate_hz": scenario.rate_hz})
    epoch_s = scenario.start.timestamp() if scenario.start is not None else time.time()
    pipeline = Pipeline(settings, profile, emit, epoch_s, seq)
    if scenario.start is not None:  # calendar rules read local time from the scenario's offset
        pipeline.station.set_local_utc_offset(scenario.start.utcoffset().total_seconds())
    pipeline.start(0.0)
    for t0, tx, rx, inputs in scenario.block_iter(block_s):
        pipeline.feed(t0, tx, rx, inputs)
    pipeline.stop(scenario.duration_s)
    return pipeline
