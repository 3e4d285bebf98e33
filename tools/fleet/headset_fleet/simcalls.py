"""Simulated stations' call streams and the load generator's counts, shared by both loadgen modes."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    stations: int = 0
    connected: int = 0
    published: int = 0
    acked: int = 0
    elapsed_s: float = 0.0
    errors: list = field(default_factory=list)

    @property
    def unacked(self) -> int:
        return self.published - self.acked

    def add(self, other: LoadResult) -> None:
        self.stations += other.stations
        self.connected += other.connected
        self.published += other.published
        self.acked += other.acked
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)
        self.errors += other.errors

    def summary(self) -> str:
        rate = self.published / self.elapsed_s if self.elapsed_s else 0.0
        errs = f"; errors: {'; '.join(self.errors[:3])}" if self.errors else ""
        return (
            f"loadgen: {self.connected}/{self.stations} stations connected, {self.published} events published "
            f"in {self.elapsed_s:.1f} s ({rate:.0f}/s), {self.acked} acknowledged, {self.unacked} not{errs}"
        )


def call_script(rng: random.Random):
    """An endless stream of (type, fields) for one station's calls, with realistic odds."""
    n = 0
    while True:
        n += 1
        call = f"c{n}-{rng.getrandbits(32):08x}"
        rings = rng.choices([1, 2, 3, 4, 5], [30, 35, 20, 10, 5])[0]
        for _ in range(rings):
            yield None, "ring", {"state": True}
        yield call, "call.start", {"rings": rings}
        if rings > 3:
            yield call, "rule.violation", {"rule": "answer-rings", "detail": f"answered after {rings} rings"}
        yield call, "hook", {"state": "off"}
        yield call, "cue", {"cue": "greet", "leds": {"green": "blink"}}
        yield (
            call,
            "line",
            {"channel": "rx", "condition": "ok", "level_dbfs": -24.0, "noise_dbfs": -62.0, "snr_db": 38.0},
        )
        holds, hold_s, dead_s, overtalk, violations = 0, 0.0, 0.0, 0, []
        if rng.random() < 0.35:
            holds, hold_s = 1, round(rng.uniform(5, 90), 1)
            yield call, "hold.start", {"after_s": 0.0}
            if hold_s > 45:
                yield call, "hold.warn", {"after_s": 45.0}
            if hold_s > 60:
                yield call, "hold.limit", {"after_s": 60.0}
                yield call, "rule.violation", {"rule": "hold-limit", "detail": "hold past 60 s"}
                violations.append("hold-limit")
            yield call, "hold.end", {"duration_s": hold_s}
        if rng.random() < 0.3:
            dead_s = round(rng.uniform(5, 15), 1)
            yield call, "dead_air", {"duration_s": dead_s}
        if rng.random() < 0.3:
            overtalk = 1
            yield call, "overtalk", {"duration_s": round(rng.uniform(0.5, 2), 2)}
        yield call, "hook", {"state": "on"}
        duration = round(rng.uniform(30, 400), 1)
        yield (
            call,
            "call.end",
            {
                "duration_s": duration,
                "talk_s": {"tx": duration * 0.4, "rx": duration * 0.4},
                "overtalk_count": overtalk,
                "hold_count": holds,
                "hold_s": hold_s,
                "longest_hold_s": hold_s,
                "dead_air_s": dead_s,
                "violations": violations,
            },
        )
