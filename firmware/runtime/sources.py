"""The audio source a station reads: the configured device (`hal.audio`: PyAudio or
silence), or file audio played in real time for `--simulate` (WAV files, a scenario).
"""

from __future__ import annotations

from firmware.config.settings import AudioSettings
from firmware.errors import AudioFormatError
from firmware.sim.scenario import Scenario
from firmware.sim.wav import read_wav
from hal.audio import ArraySource, AudioSource
from hal.audio import open_source as open_device


def wav_source(settings: AudioSettings) -> ArraySource:
    """`audio.wav_tx` / `audio.wav_rx` in real time, then silence."""
    chans = {}
    for ch, path in (("tx", settings.wav_tx), ("rx", settings.wav_rx)):
        if path:
            rate_hz, chans[ch] = read_wav(path)
            if rate_hz != settings.rate_hz:
                raise AudioFormatError(f"{path}: {rate_hz} Hz but audio.rate_hz is {settings.rate_hz}")
    return ArraySource(settings, chans.get("tx"), chans.get("rx"), name="wav")


def open_source(settings: AudioSettings, *, scenario: Scenario | None = None) -> AudioSource:
    """The source to read (not yet opened); a scenario overrides `audio.backend`, whose rate
    `settings.rate_hz` must then be."""
    if scenario is not None:
        return ArraySource(settings, scenario.tx, scenario.rx, name=f"scenario {scenario.path.name}")
    if settings.backend == "wav":
        return wav_source(settings)
    return open_device(settings)
