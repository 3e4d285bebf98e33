"""The cue board: which of the active LED cues shows (the highest priority one), and the cues
that switch themselves off. The cue tables and the pattern syntax are configuration
(`firmware.config.leds`).
"""

from __future__ import annotations

from collections.abc import Callable

from firmware.config.leds import CueSpec

# Cues that switch themselves off after this long (seconds); apologize_wait uses the
# profile's apologize_s instead.
BRIEF_S = {"overtalk": 3.0, "thank_waiting": 4.0, "lower_voice": 3.0, "apologize_wait": 5.0}
# Cues that belong to the station, not to a call: they stay when a call ends.
STATION_CUES = ("idle", "fault")


class CueBoard:
    """The set of active cues; shows the highest priority one (latest wins a tie).

    Changes collect until `flush()`, so a burst of changes at one instant (call answered:
    on_call and greet) shows only where it ends; `on_change(t, cue, spec)` runs then if the
    shown cue changed, with the instant of the last change.
    """

    def __init__(self, table: dict, on_change: Callable[[float, str, CueSpec], None]):
        self.table = table
        self.on_change = on_change
        self._active: dict[str, int] = {}  # cue -> activation order
        self._order = 0
        self._changed_t: float | None = None
        self.shown: str | None = None

    def set(self, t: float, cue: str, on: bool = True) -> None:
        if on:
            self._order += 1
            self._active[cue] = self._order
        elif self._active.pop(cue, None) is None:
            return
        self._changed_t = t

    def clear(self, t: float, keep: tuple = STATION_CUES) -> None:
        for cue in [c for c in self._active if c not in keep]:
            del self._active[cue]
        self._changed_t = t

    def flush(self) -> None:
        if self._changed_t is None:
            return
        t, self._changed_t = self._changed_t, None
        best, key = "idle", (-1, 0)
        for cue, order in self._active.items():
            k = (self.table[cue].priority, order)
            if k > key:
                best, key = cue, k
        if best != self.shown:
            self.shown = best
            self.on_change(t, best, self.table[best])
