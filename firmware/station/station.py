"""The station: hook/mute/ring inputs and the two channels' analysis edges in, events and
LED cues out, on a clock it is given (it never reads one).

It owns the call state machine (idle -> ringing -> call answered/conversation/on hold/
closing -> ended), the deadline timers and the cue board, and runs the service rules of
`firmware.rules` against the current profile. `advance(t)` is on the path of every audio
block, so when no timer is due it is one comparison.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from firmware import __version__
from firmware.analysis.edges import LineChange, SpeechEnd, SpeechLevel, SpeechStart, ToneDetected
from firmware.config.leds import build_table
from firmware.config.profiles import Profile
from firmware.protocol.envelope import EmitFn, EventFactory, iso_utc
from firmware.station.call import ANSWERED, CLOSING, CONVERSATION, IDLE, ON_HOLD, RINGING, Call, Rings
from firmware.station.cues import BRIEF_S, CueBoard
from firmware.station.rules import build_rules
from firmware.station.rules.context import CallView
from firmware.station.timers import Timers

# No ring for this long after the last one: the caller gave up (missed call).
RING_MISSED_S = 8.0


def _db(value: float) -> float | None:
    """A level for JSON: 0.1 dB resolution; digital silence (-inf) has no level."""
    return round(float(value), 1) if math.isfinite(value) else None


class Station:
    def __init__(self, settings, profile: Profile, events: EventFactory, emit: EmitFn, leds=None):
        self.settings = settings
        self.profile = profile
        self.events = events
        self._emit = emit
        self.leds = leds
        self.timers = Timers()
        table, _problems = build_table(settings.leds.kind, settings.leds.cues)  # validated by settings
        self.cues = CueBoard(table, self._show_cue)
        self.onset_s = settings.analysis.onset_ms / 1000.0
        self.hangover_s = settings.analysis.hangover_ms / 1000.0
        self.frame_s = settings.audio.frame_ms / 1000.0
        self.now = 0.0
        self.hook_off = False
        self.muted = False
        self.ring_on = False
        self.rings = Rings()
        self.call: Call | None = None
        self.phase = IDLE  # idle/ringing, while there is no call
        self.speaking = {"tx": False, "rx": False}
        self.speech_start_t = {"tx": 0.0, "rx": 0.0}
        self.line_state: dict[str, str | None] = {"tx": None, "rx": None}
        self.faults: dict[str, str] = {}
        self.script: dict | None = None  # {"script", "step", "prompt"} of the running script
        self._utc_offset_s: float | None = None
        self._zone = ZoneInfo(settings.station.tz) if settings.station.tz else None  # validated by settings
        self._led_failed = False
        self.rules = build_rules(self)

    # ----- context for the rules -------------------------------------------------------
    def emit(self, type_: str, t: float, **fields) -> None:
        self._emit(self._make(type_, t, **fields))

    def _make(self, type_: str, t: float, **fields) -> dict:
        # Events never go back in time, even if a rule computes an earlier instant.
        return self.events.make(type_, float(max(t, self.now)), self.call.id if self.call else None, **fields)

    def violation(self, rule: str, t: float, detail: str) -> None:
        if self.call is not None:
            self.call.add_violation(rule)
        self.emit("rule.violation", t, rule=rule, detail=detail)

    def schedule(self, key: str, deadline_t: float, fn) -> None:
        self.timers.schedule(key, max(deadline_t, self.now), fn)

    def cancel(self, key: str) -> None:
        self.timers.cancel(key)

    def cue(self, t: float, name: str, on: bool = True) -> None:
        self.cues.set(max(t, self.now), name, on)

    def brief_cue(self, t: float, name: str, duration_s: float | None = None) -> None:
        """Show a cue that clears itself after `duration_s` (default BRIEF_S[name])."""
        self.cue(t, name)
        duration_s = BRIEF_S[name] if duration_s is None else duration_s
        self.schedule(f"cue:{name}", t + duration_s, lambda at, n=name: self.cue(at, n, False))

    def local_minute(self, t: float) -> float:
        """Minutes since local midnight at station time t (for calendar rules). Local time is
        the station's zone (`station.tz`, with its summer time) when set; else a fixed offset
        given by `set_local_utc_offset` (a scenario's start); else the system's time zone."""
        epoch_s = self.events.epoch_s + t
        offset_s = self._utc_offset_s
        if self._zone is not None:
            offset = datetime.fromtimestamp(epoch_s, self._zone).utcoffset()
            offset_s = offset.total_seconds() if offset is not None else 0.0
        elif offset_s is None:
            offset_s = time.localtime(epoch_s).tm_gmtoff
        return ((epoch_s + offset_s) % 86400.0) / 60.0

    def set_local_utc_offset(self, seconds: float | None) -> None:
        """Local time = UTC + seconds for calendar rules when `station.tz` is not set (the
        replay passes the scenario start's offset); None = the system's local time zone."""
        self._utc_offset_s = seconds

    # ----- the interface ------------------------------------------------------------------
    def start(self, t: float, hook_off: bool = False, muted: bool = False) -> None:
        self.now = t
        self.emit("station.online", t, firmware=__version__, profile=self.profile.name)
        self.cues.set(t, "idle")
        self.cues.flush()
        self.muted = bool(muted)
        if hook_off:
            self.hook_off = True
            self.emit("hook", t, state="off")
            self._open_call(t, mid_call=True)
        self.cues.flush()

    def advance(self, t: float) -> None:
        if t >= self.timers.next_t:
            self.timers.run_due(t, self._timer_at)
            self.cues.flush()
        if t > self.now:
            self.now = t

    def _timer_at(self, t: float) -> None:
        self.cues.flush()  # what the previous timer changed shows at its own deadline
        if t > self.now:
            self.now = t

    def on_input(self, t: float, name: str, value) -> None:
        self.advance(t)
        self._input(t, name, value)
        self.cues.flush()

    def _input(self, t: float, name: str, value) -> None:
        if name == "hook":
            if value not in ("off", "on"):
                self.emit("fault", t, component="gpio", detail=f"hook input {value!r} is not 'off' or 'on'")
                return
            off = value == "off"
            if off == self.hook_off:
                return  # debounced by hal; a repeat of the current state changes nothing
            self.hook_off = off
            self.emit("hook", t, state="off" if off else "on")
            if off:
                self._open_call(t)
            elif self.call is not None:
                self._end_call(self.call, t)
        elif name == "mute":
            muted = bool(value)
            if muted == self.muted:
                return
            self.muted = muted
            self.emit("mute", t, state=muted)
            if self.call is not None:
                self._set_hold(self.call, t, muted)
        elif name == "ring":
            self._ring(t, bool(value))
        else:
            self.emit("fault", t, component="gpio", detail=f"unknown input {name!r}")

    def on_edge(self, edge) -> None:
        self.advance(edge.t)
        self._edge(edge)
        self.cues.flush()

    def _edge(self, edge) -> None:
        if isinstance(edge, SpeechStart):
            ch = edge.channel
            self.speaking[ch] = True
            self.speech_start_t[ch] = edge.start_t
            call = self.call
            if call is not None:
                call.spoken[ch] = True
                if call.phase == ANSWERED:
                    call.phase = CONVERSATION
                for rule in self.rules:
                    rule.speech_start(edge)
        elif isinstance(edge, SpeechEnd):
            ch = edge.channel
            self.speaking[ch] = False
            call = self.call
            if call is not None:
                call.add_speech(ch, edge.end_t - edge.duration_s, edge.end_t)
                call.spoken[ch] = True
                call.last_end_t[ch] = edge.end_t
                for rule in self.rules:
                    rule.speech_end(edge)
        elif isinstance(edge, SpeechLevel):
            if self.call is not None:
                for rule in self.rules:
                    rule.speech_level(edge)
        elif isinstance(edge, LineChange):
            if self.line_state[edge.channel] != edge.condition:
                self.line_state[edge.channel] = edge.condition
                self.emit(
                    "line",
                    edge.t,
                    channel=edge.channel,
                    condition=edge.condition,
                    level_dbfs=_db(edge.level_dbfs),
                    noise_dbfs=_db(edge.noise_dbfs),
                    snr_db=_db(edge.snr_db),
                )
            if self.call is not None:
                for rule in self.rules:
                    rule.line(edge)
        elif isinstance(edge, ToneDetected):
            call = self.call
            if call is not None and edge.channel == "rx" and not call.farend_gone:
                self.emit("farend.disconnect", edge.t, tone=edge.tone)
                call.farend_gone = True
                for rule in self.rules:
                    rule.farend_gone(edge.t, edge.tone)
                call.phase = CLOSING

    def on_fault(self, t: float, component: str, detail: str) -> None:
        self.advance(t)
        self.faults[component] = detail
        self.emit("fault", t, component=component, detail=detail)
        self.cues.set(t, "fault")
        self.cues.flush()

    def on_fault_cleared(self, t: float, component: str) -> None:
        self.advance(t)
        self.faults.pop(component, None)
        self.emit("fault.cleared", t, component=component)
        if not self.faults:
            self.cues.set(t, "fault", False)
            self.cues.flush()

    def apply_profile(self, profile: Profile) -> None:
        """New timings and prompts apply to every deadline computed from now on."""
        self.profile = profile

    def stop(self, t: float) -> None:
        self.advance(t)
        if self.call is not None:
            self._end_call(self.call, t)
        self.timers.cancel_all()
        self.faults.clear()
        self.cues.clear(t, keep=("idle",))
        self.cues.flush()
        self.emit("station.offline", t, firmware=__version__, profile=self.profile.name)

    @property
    def state(self) -> dict:
        call = self.call
        hold_s = (self.now - call.hold_start_t) if call is not None and call.hold_start_t is not None else 0.0
        return {
            "call": call.id if call else None,
            "call_started": iso_utc(self.events.epoch_s + call.start_t) if call else None,  # for call timers
            "phase": call.phase if call else self.phase,
            "hook": "off" if self.hook_off else "on",
            "muted": self.muted,
            "on_hold": bool(call and call.on_hold),
            "hold_s": round(hold_s, 3),
            "cue": self.cues.shown,
            "line": dict(self.line_state),
            "script": dict(self.script) if self.script else None,
            "faults": dict(self.faults),
        }

    def _show_cue(self, t: float, cue: str, spec) -> None:
        self.emit("cue", t, cue=cue, leds=dict(spec.leds))
        if self.leds is None:
            return
        try:
            self.leds.show(cue, spec)
        except Exception as exc:  # a broken LED must not stop the rules; report it once
            if not self._led_failed:
                self._led_failed = True
                self.emit("fault", t, component="gpio", detail=f"LED driver: {exc}")

    # ----- call state machine --------------------------------------------------------------
    def _ring(self, t: float, on: bool) -> None:
        if on == self.ring_on:
            return
        self.ring_on = on
        self.emit("ring", t, state=on)
        if self.call is not None:
            return  # a second line ringing mid-call does not start another call
        if on:
            self.rings.on(t)
            self.phase = RINGING
            self.timers.cancel("ring:missed")
        else:
            self.rings.off(t)
            self.timers.schedule("ring:missed", t + RING_MISSED_S, self._missed)

    def _missed(self, t: float) -> None:
        self.emit("call.missed", t, rings=self.rings.count)
        self.rings.reset()
        self.phase = IDLE

    def _open_call(self, t: float, mid_call: bool = False) -> None:
        self.timers.cancel("ring:missed")
        rings = 0 if mid_call else self.rings.count
        self.rings.reset()
        fields = {"rings": rings}
        if mid_call:
            fields["mid_call"] = True
        start = self._make("call.start", t, **fields)  # self.call is None: no call id yet
        # The id is the station plus the seq of its call.start: unique across restarts (seq
        # is persisted) and the same in every replay of a recording (no wall clock in it).
        start["call"] = call_id = f"{self.events.station_id}-{start['seq']}"
        self.call = call = Call(id=call_id, start_t=t, rings=rings, mid_call=mid_call)
        # Speech already running when the call opens counts from the call's start.
        for ch, on in self.speaking.items():
            if on:
                self.speech_start_t[ch] = max(self.speech_start_t[ch], t)
                call.phase = CONVERSATION
        self._emit(start)
        self.cues.set(t, "on_call")
        view = CallView(call)
        for rule in self.rules:
            rule.call_start(t, view)
        if self.muted:
            self._set_hold(call, t, True)

    def _set_hold(self, call: Call, t: float, on: bool) -> None:
        if on == call.on_hold:
            return
        if on:
            call.hold_start_t = t
            call.phase = ON_HOLD
        elif call.hold_start_t is not None:
            call.add_hold(t - call.hold_start_t)
            call.hold_start_t = None
            if call.phase == ON_HOLD:
                call.phase = CLOSING if call.farend_gone else CONVERSATION
        for rule in self.rules:
            rule.hold(t, on)

    def _end_call(self, call: Call, t: float) -> None:
        view = CallView(call)
        for rule in self.rules:
            rule.hook_on(t, view)
        if call.on_hold:
            self._set_hold(call, t, False)
        for ch, on in self.speaking.items():
            if on:  # an utterance still running at hang-up counts up to now
                call.add_speech(ch, self.speech_start_t[ch], t)
        self.emit("call.end", t, **call.summary(t))
        self.timers.cancel_all()
        self.script = None
        self.call = None
        self.phase = IDLE
        self.cues.clear(t)
