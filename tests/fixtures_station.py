"""Fixtures for the station, rule, cue and LED tests: a Station on a virtual clock that
records every event, helpers to feed synthetic speech, and a reset gpiozero MockFactory."""

from __future__ import annotations

import pytest

from firmware.analysis.edges import LineChange, SpeechEnd, SpeechStart, ToneDetected
from firmware.config.profiles import load_profile
from firmware.config.settings import Settings
from firmware.protocol.envelope import EventFactory
from firmware.station.station import Station

EPOCH_S = 1_795_000_000.0  # a fixed wall-clock origin so ids and ts are reproducible
ONSET_S, HANGOVER_S = 0.09, 0.3  # the default analysis settings (90 ms onset, 300 ms hangover)


class Harness:
    """Drives a Station with synthetic edges whose detection lags like the real analyser's."""

    def __init__(self, profile="hotline-5s", settings: Settings | None = None, leds=None, **overrides):
        self.settings = settings or Settings()
        self.profile = load_profile(profile, overrides or None)
        self.events: list[dict] = []
        self.factory = EventFactory("st-1", EPOCH_S)
        self.station = Station(self.settings, self.profile, self.factory, self.events.append, leds)
        self.station.set_local_utc_offset(8 * 3600)

    # --- driving ---
    def start(self, t=0.0, **kw):
        self.station.start(t, **kw)
        return self

    def input(self, t, name, value):
        self.station.on_input(t, name, value)

    def off(self, t):
        self.input(t, "hook", "off")

    def on(self, t):
        self.input(t, "hook", "on")

    def speech(self, ch, start_t, end_t, level_dbfs=-20.0):
        """An utterance: SpeechStart detected ONSET_S after start, SpeechEnd HANGOVER_S after end."""
        self.station.on_edge(SpeechStart(ch, start_t + ONSET_S, start_t))
        self.station.on_edge(SpeechEnd(ch, end_t + HANGOVER_S, end_t, level_dbfs, end_t - start_t))

    def speech_start(self, ch, start_t):
        self.station.on_edge(SpeechStart(ch, start_t + ONSET_S, start_t))

    def speech_end(self, ch, start_t, end_t, level_dbfs=-20.0):
        self.station.on_edge(SpeechEnd(ch, end_t + HANGOVER_S, end_t, level_dbfs, end_t - start_t))

    def line(self, t, ch, condition, level=-30.0, noise=-60.0):
        self.station.on_edge(LineChange(ch, t, condition, level, noise, level - noise))

    def tone(self, t, tone="busy-cn"):
        self.station.on_edge(ToneDetected("rx", t, tone))

    def advance(self, t):
        self.station.advance(t)

    def stop(self, t):
        self.station.stop(t)

    # --- reading ---
    def of(self, type_, **match):
        return [e for e in self.events if e["type"] == type_ and all(e.get(k) == v for k, v in match.items())]

    def one(self, type_, **match):
        found = self.of(type_, **match)
        assert len(found) == 1, f"expected one {type_} {match}, got {found}"
        return found[0]

    def types(self):
        return [e["type"] for e in self.events]

    def cues(self):
        return [(e["t"], e["cue"]) for e in self.events if e["type"] == "cue"]

    def violations(self):
        return [e["rule"] for e in self.of("rule.violation")]


def answered(profile="hotline-5s", **kw) -> Harness:
    """A started station whose call was answered (hook off) at t = 0."""
    h = Harness(profile, **kw).start()
    h.off(0.0)
    return h


@pytest.fixture
def mock_factory():
    """gpiozero's MockFactory with PWM pins, reset before and after the test."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    saved = Device.pin_factory
    factory = MockFactory(pin_class=MockPWMPin)
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = saved
