"""Deadline scheduler for the station's rules: exact deadlines on a clock it is given.

Rules schedule named timers (one live deadline per key; scheduling a key again replaces
it). `run_due(t)` fires every timer due at or before `t` in deadline order, each with its
own deadline, so an event a timer emits carries the instant the rule defines, not the
instant the block that noticed it ended. `next_t` is the earliest pending deadline, so the
caller's per-block check is one float comparison; cancelled entries stay in the heap and
are skipped when they surface (lazy deletion keeps cancel O(1)).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

TimerFn = Callable[[float], None]


class Timers:
    def __init__(self):
        self._heap: list[tuple[float, int, str, TimerFn]] = []
        self._live: dict[str, int] = {}  # key -> token of its live entry
        self._token = 0
        self.next_t = math.inf

    def schedule(self, key: str, deadline_t: float, fn: TimerFn) -> None:
        """Fire `fn(deadline_t)` at `deadline_t`; replaces any pending timer of the same key."""
        self._token += 1
        self._live[key] = self._token
        heapq.heappush(self._heap, (deadline_t, self._token, key, fn))
        if deadline_t < self.next_t:
            self.next_t = deadline_t

    def cancel(self, key: str) -> None:
        self._live.pop(key, None)

    def cancel_all(self) -> None:
        """Cancel every pending timer: all of them belong to the call (or to the ringing
        before one), so a call's end or the station's stop ends them all."""
        self._live.clear()

    def pending(self, key: str) -> bool:
        return key in self._live

    def run_due(self, t: float, on_time: Callable[[float], None]) -> None:
        """Fire every live timer with deadline <= t; `on_time(deadline)` runs before each."""
        heap = self._heap
        while heap and heap[0][0] <= t:
            deadline_t, token, key, fn = heapq.heappop(heap)
            if self._live.get(key) != token:
                continue  # cancelled or replaced
            del self._live[key]
            on_time(deadline_t)
            fn(deadline_t)
        self.next_t = heap[0][0] if heap else math.inf
