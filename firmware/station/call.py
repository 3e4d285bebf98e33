"""One call's state and the running totals its `call.end` summary reports.

The station owns at most one `Call` at a time. Phases: ringing and idle belong to the
station (no call yet); a call goes answered -> conversation (first speech on either
channel) <-> on_hold, -> closing (far end gone or the final script step reached), and
ends with `call.end` on hook on (or stop), when the station is idle again.
Speech time is clipped to the call so talk_s never exceeds duration_s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CHANNELS = ("tx", "rx")
# Ring-detect pulses closer than this belong to one ring (a burst); the ringer's off-time
# between rings is 2-4 s in every common cadence.
RING_BURST_GAP_S = 0.8

IDLE, RINGING, ANSWERED, CONVERSATION, ON_HOLD, CLOSING = (
    "idle",
    "ringing",
    "answered",
    "conversation",
    "on_hold",
    "closing",
)


@dataclass
class Call:
    id: str
    start_t: float
    rings: int
    mid_call: bool = False  # the service started with the handset already off hook
    phase: str = ANSWERED
    talk_s: dict = field(default_factory=lambda: {"tx": 0.0, "rx": 0.0})
    spoken: dict = field(default_factory=lambda: {"tx": False, "rx": False})
    last_end_t: dict = field(default_factory=lambda: {"tx": None, "rx": None})
    overtalk_count: int = 0
    hold_count: int = 0
    hold_s: float = 0.0
    longest_hold_s: float = 0.0
    hold_start_t: float | None = None
    dead_air_s: float = 0.0
    farend_gone: bool = False
    violations: list = field(default_factory=list)

    @property
    def on_hold(self) -> bool:
        return self.hold_start_t is not None

    def add_speech(self, channel: str, start_t: float, end_t: float) -> None:
        """Count an utterance's time inside the call."""
        start_t = max(start_t, self.start_t)
        if end_t > start_t:
            self.talk_s[channel] += end_t - start_t

    def add_hold(self, duration_s: float) -> None:
        self.hold_count += 1
        self.hold_s += duration_s
        self.longest_hold_s = max(self.longest_hold_s, duration_s)

    def add_violation(self, rule: str) -> None:
        if rule not in self.violations:
            self.violations.append(rule)

    def last_speech_end_t(self, channels=CHANNELS) -> float | None:
        """The true end of the last finished utterance on any of `channels` (None: none yet)."""
        return max((self.last_end_t[ch] for ch in channels if self.last_end_t[ch] is not None), default=None)

    def summary(self, end_t: float) -> dict:
        """The `call.end` fields (the README's event contract)."""
        duration_s = max(0.0, end_t - self.start_t)
        return {
            "duration_s": round(duration_s, 3),
            "talk_s": {ch: round(min(self.talk_s[ch], duration_s), 3) for ch in CHANNELS},
            "overtalk_count": self.overtalk_count,
            "hold_count": self.hold_count,
            "hold_s": round(min(self.hold_s, duration_s), 3),
            "longest_hold_s": round(min(self.longest_hold_s, self.hold_s, duration_s), 3),
            "dead_air_s": round(min(self.dead_air_s, duration_s), 3),
            "violations": list(self.violations),
        }


class Rings:
    """The rings of the incoming call, counted by bursts of the ring-detect input."""

    def __init__(self):
        self.count = 0
        self._off_t: float | None = None

    def on(self, t: float) -> None:
        # A pulse soon after the previous one is the same ring (a chattering contact).
        if self._off_t is None or t - self._off_t >= RING_BURST_GAP_S:
            self.count += 1

    def off(self, t: float) -> None:
        self._off_t = t

    def reset(self) -> None:
        self.count, self._off_t = 0, None
