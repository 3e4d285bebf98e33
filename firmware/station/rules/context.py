"""What a rule sees of the station and what it may change: the typed rule context.

Every rule gets its own `RuleContext`. It reads the station's state through read-only
views (`call` is a `CallView`, `speaking`/`line_state`/`speech_start_t` are read-only
mappings, `script` a copy), acts through the station's outputs (`emit`, `violation`,
`schedule`/`cancel`, `cue`/`brief_cue`), and changes shared state only through the
writes its rule class declares in `writes` (a subset of `WRITES`); any other write is a
`RuleWriteError`. Which rule reads what another writes is declared in `reads`, and
`firmware.station.rules.RULE_ORDER` runs every writer before its readers (checked by the tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from firmware.station.call import CHANNELS, CLOSING, CONVERSATION

if TYPE_CHECKING:  # the station imports the rules; the rules only need its type
    from firmware.config.profiles import Profile
    from firmware.station.call import Call
    from firmware.station.station import Station

# The shared state a rule may change, each through one method of RuleContext.
SCRIPT = "script"  # set_script: the running script, shown in `state`
PHASE = "phase"  # set_phase: the call's phase (closing <-> conversation)
DEAD_AIR = "dead_air"  # add_dead_air: call.end's dead_air_s
OVERTALK = "overtalk_count"  # count_overtalk: call.end's overtalk_count
WRITES = frozenset({SCRIPT, PHASE, DEAD_AIR, OVERTALK})
SCRIPT_PHASES = (CLOSING, CONVERSATION)  # the phases a rule may set


class RuleWriteError(RuntimeError):
    """A rule changed state it did not declare in its `writes` (a programming error)."""


class CallView:
    """Read-only view of the open call, for rules."""

    __slots__ = ("_call",)

    def __init__(self, call: Call):
        self._call = call

    @property
    def id(self) -> str:
        return self._call.id

    @property
    def start_t(self) -> float:
        return self._call.start_t

    @property
    def rings(self) -> int:
        return self._call.rings

    @property
    def mid_call(self) -> bool:
        return self._call.mid_call

    @property
    def phase(self) -> str:
        return self._call.phase

    @property
    def on_hold(self) -> bool:
        return self._call.on_hold

    @property
    def farend_gone(self) -> bool:
        return self._call.farend_gone

    @property
    def dead_air_s(self) -> float:
        return self._call.dead_air_s

    @property
    def overtalk_count(self) -> int:
        return self._call.overtalk_count

    @property
    def spoken(self) -> Mapping[str, bool]:
        return MappingProxyType(self._call.spoken)

    def last_speech_end_t(self, channels=CHANNELS) -> float | None:
        return self._call.last_speech_end_t(channels)


class RuleContext:
    """One rule's window on the station (see the module docstring)."""

    def __init__(self, station: Station, rule_id: str, writes: frozenset[str]):
        unknown = set(writes) - WRITES
        if unknown:
            raise RuleWriteError(f"rule {rule_id}: unknown writes {sorted(unknown)} (known: {sorted(WRITES)})")
        self._station = station
        self.rule_id = rule_id
        self.writes = frozenset(writes)
        self._view: CallView | None = None
        self.speaking: Mapping[str, bool] = MappingProxyType(station.speaking)
        self.speech_start_t: Mapping[str, float] = MappingProxyType(station.speech_start_t)
        self.line_state: Mapping[str, str | None] = MappingProxyType(station.line_state)
        self.onset_s: float = station.onset_s
        self.hangover_s: float = station.hangover_s
        self.frame_s: float = station.frame_s

    # ----- reading ---------------------------------------------------------------------------
    @property
    def profile(self) -> Profile:
        return self._station.profile

    @property
    def now(self) -> float:
        return self._station.now

    @property
    def call(self) -> CallView:
        """The open call: rules run (and their timers fire) only while a call is open."""
        call = self._open_call()
        if self._view is None or self._view._call is not call:
            self._view = CallView(call)
        return self._view

    def _open_call(self) -> Call:
        call = self._station.call
        if call is None:
            raise RuntimeError(f"rule {self.rule_id}: no call is open")
        return call

    @property
    def script(self) -> dict | None:
        """The running script ({"script", "step", "prompt", "final"}), a copy; None if none."""
        script = self._station.script
        return dict(script) if script is not None else None

    def local_minute(self, t: float) -> float:
        return self._station.local_minute(t)

    # ----- acting ----------------------------------------------------------------------------
    def emit(self, type_: str, t: float, **fields: Any) -> None:
        self._station.emit(type_, t, **fields)

    def violation(self, rule: str, t: float, detail: str) -> None:
        self._station.violation(rule, t, detail)

    def schedule(self, key: str, deadline_t: float, fn: Callable[[float], None]) -> None:
        self._station.schedule(key, deadline_t, fn)

    def cancel(self, key: str) -> None:
        self._station.cancel(key)

    def cue(self, t: float, name: str, on: bool = True) -> None:
        self._station.cue(t, name, on)

    def brief_cue(self, t: float, name: str, duration_s: float | None = None) -> None:
        self._station.brief_cue(t, name, duration_s)

    # ----- the declared writes ---------------------------------------------------------------
    def _check(self, what: str) -> None:
        if what not in self.writes:
            raise RuleWriteError(f"rule {self.rule_id} may not change {what} (not in its writes)")

    def set_script(self, script: dict | None) -> None:
        self._check(SCRIPT)
        self._station.script = dict(script) if script is not None else None

    def set_phase(self, phase: str) -> None:
        self._check(PHASE)
        if phase not in SCRIPT_PHASES:
            raise RuleWriteError(f"rule {self.rule_id}: a rule may set the phase to {SCRIPT_PHASES}, not {phase!r}")
        self._open_call().phase = phase

    def add_dead_air(self, duration_s: float) -> None:
        self._check(DEAD_AIR)
        self._open_call().dead_air_s += duration_s

    def count_overtalk(self) -> None:
        self._check(OVERTALK)
        self._open_call().overtalk_count += 1
