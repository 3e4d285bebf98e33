"""Station events: the JSON objects of the README's event contract, made with `seq`, `id`, `t` and `ts`.

`EventFactory.make` is the only place events are built, so every sink (stdout, outbox,
MQTT, the LED driver's cue log) sees the same object. `t` is the station clock (seconds
since scenario start in replay, since service start in `run`); `ts` is `epoch_s + t` as
ISO 8601 UTC. A station with a desk name and an agent logged in adds `desk` and `agent`
to every event (additive fields; absent when unset).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

Event = dict
EmitFn = Callable[[Event], None]


class SeqSource(Protocol):
    """Hands out strictly increasing sequence numbers; durable ones survive restarts."""

    def next_seq(self) -> int: ...


class MemorySeq:
    """A sequence that starts at 1 and lives in memory (replay without a state dir)."""

    def __init__(self, start: int = 1):
        self._next = start

    def next_seq(self) -> int:
        seq = self._next
        self._next += 1
        return seq


def iso_utc(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventFactory:
    """Builds events for one station; `epoch_s` is the wall-clock instant of t = 0."""

    def __init__(
        self, station_id: str, epoch_s: float, seq: SeqSource | None = None, *, desk: str = "", agent: str | None = None
    ):
        self.station_id = station_id
        self.epoch_s = epoch_s
        self.seq = seq or MemorySeq()
        self.desk = desk  # additive envelope fields, present only when set
        self.agent = agent  # the agent at the desk now (the `agent` command changes it)

    def make(self, type_: str, t: float, call: str | None, **fields) -> Event:
        event = {
            "type": type_,
            "t": round(t, 3),
            "ts": iso_utc(self.epoch_s + t),
            "station": self.station_id,
            "seq": self.seq.next_seq(),
            "id": uuid.uuid4().hex,
            "call": call,
        }
        if self.desk:
            event["desk"] = self.desk
        if self.agent:
            event["agent"] = self.agent
        event.update(fields)
        return event


def to_json(event: Event) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


class EventFanout:
    """Calls each sink in turn; a sink that raises is reported by `on_error`, not fatal."""

    def __init__(self, *sinks: EmitFn, on_error: Callable[[EmitFn, Exception], None] | None = None):
        self.sinks = list(sinks)
        self.on_error = on_error

    def add(self, sink: EmitFn) -> None:
        self.sinks.append(sink)

    def __call__(self, event: Event) -> None:
        for sink in self.sinks:
            try:
                sink(event)
            except Exception as exc:  # one broken sink must not stop the others
                if self.on_error is None:
                    raise
                self.on_error(sink, exc)
