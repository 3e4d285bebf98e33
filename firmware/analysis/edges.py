"""What the audio analysis tells the station: sparse, time-stamped edges per channel.

The analysis runs per frame (vectorised per block); the station's rules only see these
edges, so the per-frame cost stays in numpy and webrtcvad. Every edge has `t`, the instant
it was *detected* (end of the frame that decided it; never earlier than any edge the same
analyser produced before), and, where the rules need the true instant, the time the thing
really began or ended (`start_t`, `end_t`), which is earlier by the onset or hangover.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SpeechStart:
    channel: str  # "tx" (agent) or "rx" (customer)
    t: float  # detection instant (after the onset smoothing)
    start_t: float  # start of the first speech frame of the utterance


@dataclass(frozen=True, slots=True)
class SpeechLevel:
    """An utterance still in progress: the active level of its last `window_s`, reported
    once it has lasted `window_s` and every half second after (rules that must act while
    someone is still talking, e.g. agent-volume, use it)."""

    channel: str
    t: float  # end of the frame it describes
    start_t: float  # start of the utterance
    active_level_dbfs: float  # active level over the last window_s (noise taken out)
    duration_s: float  # how long the utterance has lasted at t
    window_s: float


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    channel: str
    t: float  # detection instant (after the hangover)
    end_t: float  # end of the last speech frame of the utterance
    active_level_dbfs: float  # P.56-style active level over the utterance's speech frames
    duration_s: float  # end_t - start_t


@dataclass(frozen=True, slots=True)
class LineChange:
    channel: str
    t: float
    condition: str  # "silent" | "ok" | "low" | "noisy"
    level_dbfs: float  # active speech level (or frame level when silent)
    noise_dbfs: float  # adaptive noise floor
    snr_db: float  # level_dbfs - noise_dbfs


@dataclass(frozen=True, slots=True)
class ToneDetected:
    channel: str
    t: float  # instant the cadence was confirmed
    tone: str  # e.g. "busy-cn", "reorder-na", "busy-etsi"


Edge = SpeechStart | SpeechLevel | SpeechEnd | LineChange | ToneDetected
