"""Glue between the live service and its peripherals: LEDs, reporting, the simulated desk.

Kept apart from `service.py` so the main loop reads as a loop. `ScenarioDriver` plays a
scenario's input edges onto the mock pins at their wall-clock times, so `run --simulate
--scenario` goes through the real gpiozero Button path (debounce included).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from firmware.config.profiles import load_profile
from firmware.config.settings import Settings, load_settings
from firmware.errors import ConfigError, StationError
from firmware.reporting.commands import CommandHandler, load_overrides
from firmware.reporting.outbox import Outbox
from firmware.reporting.reporter import Reporter
from hal.leds import LedDriver

log = logging.getLogger(__name__)

SCENARIO_TAIL_S = 1.5  # keep running after the scenario's end so trailing timers and hangovers fire


def simulated_settings(settings: Settings, scenario=None) -> Settings:
    """--simulate: mock pins, and audio from the scenario, the WAV files or silence."""
    audio = {}
    if scenario is not None:
        audio = {"rate_hz": scenario.rate_hz, "channels": 2, "tx_channel": 0, "rx_channel": 1}
    elif settings.audio.backend == "pyaudio":
        audio = {"backend": "silence"}
    return settings.replace(gpio={"pin_factory": "mock"}, audio=audio)


def open_leds(leds_settings, pin_factory=None):
    """The LED driver (hal.leds.LedDriver: show(cue, spec), close()), or None when LEDs are off."""
    if leds_settings.kind == "none":
        return None
    return LedDriver(leds_settings, pin_factory=pin_factory)


class Reporting:
    """The durable outbox (also the persisted `seq`) and the MQTT Reporter draining it."""

    def __init__(self, settings: Settings, profile_name: str, *, on_fault=None, telemetry=None, on_command=None):
        self.outbox = Outbox.in_state_dir(settings.station.state_dir, settings.mqtt.outbox_max_mb)
        try:
            self.reporter = Reporter(
                settings,
                self.outbox,
                profile_name=profile_name,
                on_command=on_command,
                on_fault=on_fault,
                telemetry=telemetry,
            )
        except BaseException:
            self.outbox.close()
            raise
        self.seq = self.outbox  # the outbox is the station's durable SeqSource
        self.sink = self.reporter.sink
        self.publish_state = self.reporter.publish_state
        self.set_agent = self.reporter.set_agent
        self._closed = False
        self.reporter.start()

    def drain(self, timeout_s: float) -> int:
        """0 once everything was acknowledged; 1 if some is still queued (it stays on disk)."""
        return 0 if self.reporter.wait_drained(timeout_s) else 1

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.reporter.stop(clean=True)
            self.outbox.close()


def open_reporting(settings: Settings, profile_name: str, **callbacks) -> Reporting:
    return Reporting(settings, profile_name, **callbacks)


@dataclass(frozen=True)
class _Spec:
    leds: dict
    priority: int = 0


def command_handler(service):
    """Remote commands (cmd/<name>): they run on the MQTT thread and act through the rules loop."""
    settings = service.settings

    def get_config():
        return {"profile": service.profile.name, "timings": dict(service.profile.timings)}

    def apply_overrides(overrides):
        profile = load_profile(settings.station.profile, {**settings.profile, **overrides})
        service.call_in_loop(lambda: service.apply_profile(profile))

    def led_test():
        service.call_in_loop(lambda: _led_test(service.leds, service.pipeline.station.cues))

    def set_agent(agent):
        service.call_in_loop(lambda: service.set_agent(agent))

    handler = CommandHandler(
        get_config, apply_overrides, led_test, service.request_restart, settings.station.state_dir, set_agent=set_agent
    )
    if handler.overrides:  # persisted by an earlier set-config: they survive restarts
        try:
            service.profile = load_profile(settings.station.profile, {**settings.profile, **handler.overrides})
        except ConfigError as exc:  # e.g. a config file changed since: the file's values win
            handler.drop_overrides(f"persisted overrides do not fit the config ({exc})")
    if handler.dropped:
        log.error("storage: %s", handler.dropped)
        service.report_fault("storage", handler.dropped)
    return handler


def _led_test(leds, board) -> None:
    """Each LED on in turn (holding the rules loop ~1 s, acceptable for a technician's test), then the cue again."""
    if leds is None:
        return
    names = board.table["idle"].leds
    for name in names:
        leds.show("led-test", _Spec({k: ("steady" if k == name else "off") for k in names}))
        time.sleep(0.3)
    shown = board.shown or "idle"
    leds.show(shown, board.table[shown])


def reload_profile(service) -> None:
    """Re-read the config file and apply its profile; a broken file keeps the running one."""
    source = service.settings.source
    if source in ("defaults", "config", ""):
        log.info("reload: no config file to re-read (running on %s)", source)
        return
    try:
        fresh = load_settings(source)
        # Remote set-config overrides persist in the state dir and win over the file, as at start-up.
        remote = load_overrides(service.settings.station.state_dir)
        profile = load_profile(fresh.station.profile, {**fresh.profile, **remote})
    except StationError as exc:
        log.error("reload failed, keeping the running config: %s", exc)
        return
    service.apply_profile(profile)
    service.settings = service.settings.replace(profile=fresh.profile, station={"profile": fresh.station.profile})
    log.info("reloaded %s: profile %s (audio, gpio, leds and mqtt changes need a restart)", source, profile.name)


class ScenarioDriver:
    """Drives the mock pins from a scenario's `[[inputs]]` on the service clock."""

    def __init__(self, scenario, gpio):
        self.scenario = scenario
        self.gpio = gpio
        self.pending = list(scenario.inputs)
        self.end_s = scenario.duration_s + SCENARIO_TAIL_S

    def step(self, now_s: float) -> None:
        while self.pending and self.pending[0][0] <= now_s:
            _t, name, value = self.pending.pop(0)
            if name in self.gpio.names:
                self.gpio.drive(name, value)

    def finished(self, now_s: float) -> bool:
        return not self.pending and now_s >= self.end_s
