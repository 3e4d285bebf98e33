"""The embedded demo call that `headset-station run --simulate` plays when given no scenario.

Built once from the recorded prompts (hal.speech) into a cache directory, so a newcomer sees a
whole call on the station: two rings, the answer, the greeting, a silent customer and the
scripted "repeat the greeting" step after the 5 s pause, a conversation, a hold with the
thank-you cue, goodbyes, and a hang-up after the required pause.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from firmware.sim import speech
from firmware.sim.scenario import write_scenario

DEMO_RATE_HZ = 16000
DEMO_VERSION = 3

# (start_s, prompt) per channel; times follow the hotline-5s profile.
AGENT = [(5.6, "hello-world"), (12.4, "hello"), (18.6, "one-moment-please"), (29.2, "agent-loginok"), (35.0, "goodbye")]
# The customer says goodbye first; the agent's goodbye is the last word, then the pause.
CUSTOMER = [(14.4, "agent-newlocation"), (31.4, "im-sorry"), (33.6, "vm-goodbye")]
INPUTS = [
    (0.5, "ring", True),
    (1.5, "ring", False),
    (3.0, "ring", True),
    (4.0, "ring", False),
    (5.0, "hook", "off"),
    (20.5, "mute", True),
    (28.5, "mute", False),
    (41.5, "hook", "on"),
]
DURATION_S = 42.0


def place_prompts(placements, duration_s: float, rate_hz: int, level_dbfs: float) -> np.ndarray:
    """A track of `duration_s` with each (start_s, prompt) placed at its start, every prompt
    scaled to the same active level."""
    track = np.zeros(int(round(duration_s * rate_hz)))
    for start_s, name in placements:
        p = speech.scale_to(speech.load_prompt(name, rate_hz), level_dbfs, rate_hz)
        i = int(round(start_s * rate_hz))
        n = min(len(p), len(track) - i)
        track[i : i + n] += p[:n]
    return track


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "headset-station" / f"demo-v{DEMO_VERSION}"


def demo_scenario(directory: Path | None = None) -> Path:
    """The demo scenario file, built on first use; returns its path."""
    directory = directory or cache_dir()
    scenario = directory / "demo.toml"
    if scenario.exists():
        return scenario
    directory.mkdir(parents=True, exist_ok=True)
    n = int(DURATION_S * DEMO_RATE_HZ)
    line_noise = speech.noise("white", n, DEMO_RATE_HZ, seed=7, level_dbfs=-62.0)
    mic_noise = speech.noise("pink", n, DEMO_RATE_HZ, seed=8, level_dbfs=-66.0)
    tx = place_prompts(AGENT, DURATION_S, DEMO_RATE_HZ, -24.0) + mic_noise
    rx = place_prompts(CUSTOMER, DURATION_S, DEMO_RATE_HZ, -28.0) + line_noise
    write_scenario(
        scenario,
        DEMO_RATE_HZ,
        tx=tx,
        rx=rx,
        inputs=INPUTS,
        profile="hotline-5s",
        comment="The demo call: built by hal/demo.py from the asterisk prompts.",
    )
    return scenario
