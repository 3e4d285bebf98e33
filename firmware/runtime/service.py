"""The live driver behind `headset-station run`: wall clock, audio, GPIO, LEDs, reporting, systemd.

One main ("rules") loop owns the `Pipeline`. Everything reaches it through one `Mailbox`
(firmware.runtime.messages): audio blocks from the supervised capture thread in a bounded
queue that drops blocks when the loop is behind, and typed messages (GPIO edges from
gpiozero's thread, faults from reporting and storage, calls from the command thread, audio
failures) in an unbounded queue that never blocks, so the loop can report a fault to itself
from inside its own event sink. The loop waits on the mailbox with a short timeout and, when
audio is late, advances the pipeline on the wall clock anyway, so hook, mute and hold timing
keep running while the sound card is gone. A lost device raises an `audio` fault within `audio.stall_fault_s`;
the capture thread reopens it every `audio.reopen_s` and the first block after that
clears the fault.

Signals arrive through a socketpair (signal.set_wakeup_fd) read by the main loop, as in
nobodd/server.py: SIGTERM/SIGINT stop (station.offline, outbox flushed, exit 0), SIGHUP
reloads the profile from the config file. `t` of every event is seconds since start.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ClassVar

import numpy as np

from firmware.config.profiles import Profile, load_profile
from firmware.config.settings import Settings
from firmware.protocol.envelope import EventFanout
from firmware.reporting.commands import load_agent_or_set_aside
from firmware.runtime.capture import CaptureThread
from firmware.runtime.liveness import Heartbeat, WatchdogPinger
from firmware.runtime.messages import AudioBlock, AudioFailure, FaultReport, InputEdge, LoopCall, Mailbox, Message
from firmware.runtime.sdnotify import SdNotify
from firmware.runtime.sources import open_source
from firmware.runtime.wiring import (
    Reporting,
    ScenarioDriver,
    command_handler,
    open_leds,
    open_reporting,
    reload_profile,
    simulated_settings,
)
from firmware.sim.scenario import Scenario, load_scenario
from firmware.station.pipeline import Pipeline, echo_telemetry
from hal.audio import AudioSource
from hal.gpio import SIM_RING_PIN, GpioInputs, make_pin_factory
from hal.leds import LedDriver

log = logging.getLogger(__name__)

QUEUE_BLOCKS = 64  # audio blocks queued at most (~2 s of the default 30 ms blocks); newer ones are dropped
WAIT_S = 0.05  # the longest the rules loop sleeps: timer resolution while audio is stalled
RESTART_EXIT_CODE = 75  # EX_TEMPFAIL: not 0, so systemd's Restart=on-failure brings the service back
STATE_EVERY_S = 0.5  # the retained state topic follows the station at most this often
READY_WAIT_S = 5.0  # how long start-up waits for the first audio block (or error) before READY


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        simulate: bool = False,
        scenario: Scenario | None = None,
        printer=None,
        notifier=None,
        pipeline_factory: Callable[..., Pipeline] | None = None,
        install_signals: bool = True,
    ):
        self.settings, self.simulate, self.scenario = settings, simulate, scenario
        self.printer = printer
        self.notifier = notifier if notifier is not None else SdNotify()
        self.pipeline_factory = pipeline_factory
        self.install_signals = install_signals
        self.mailbox = Mailbox(audio_blocks=QUEUE_BLOCKS)
        self.audio_hb, self.rules_hb = Heartbeat("audio"), Heartbeat("rules")
        self.profile: Profile | None = None
        self.gpio: GpioInputs | None = None
        self.leds: LedDriver | None = None
        self.reporting: Reporting | None = None
        self.capture: CaptureThread | None = None
        self.pinger: WatchdogPinger | None = None
        self.pipeline: Pipeline | None = None  # from setup() until shutdown(); only the rules loop uses it
        self.driver: ScenarioDriver | None = None
        self.fault: str | None = None
        self.exit_code = 0
        self._stop = False
        self._reload = False
        self._sig_r: socket.socket | None = None
        self._sig_w: socket.socket | None = None
        self._old_handlers: dict[int, Any] = {}
        self._pending_inputs: list = []
        self._silence: np.ndarray | None = None
        self._audio_end_t = 0.0
        self._last_audio_t = 0.0
        self._state_due = 0.0
        self._last_state: dict | None = None
        self.source: AudioSource | None = None
        self.factory: Any = None  # the gpiozero pin factory
        self.t_start = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t_start

    def _running(self) -> Pipeline:
        """The pipeline, between setup() and shutdown()."""
        if self.pipeline is None:
            raise RuntimeError("the station's pipeline is not running")
        return self.pipeline

    # ---- set-up -------------------------------------------------------------------------
    def setup(self) -> None:

        if self.install_signals:
            self._install_signals()  # first, so a SIGTERM during set-up still ends cleanly
        s = self.settings
        # Set by an earlier `agent` command: it survives restarts. An invalid file never stops the station.
        agent, problem = load_agent_or_set_aside(s.station.state_dir)
        if problem:
            log.error("storage: %s", problem)
            self.report_fault("storage", problem)
        if agent is not None:
            s = self.settings = s.replace(station={"agent": agent})
        self.profile = profile = load_profile((self.scenario and self.scenario.profile) or s.station.profile, s.profile)
        # One factory for inputs and LEDs, passed explicitly: gpiozero's global default stays untouched.
        self.factory = factory = make_pin_factory(s.gpio.pin_factory, simulate=self.simulate)
        ring_pin = None
        if self.scenario is not None and s.gpio.ring_pin < 0 and any(n == "ring" for _, n, _ in self.scenario.inputs):
            ring_pin = SIM_RING_PIN
        self.gpio = gpio = GpioInputs(s.gpio, self._on_gpio, pin_factory=factory, ring_pin=ring_pin)
        self.leds = open_leds(s.leds, factory)
        if s.mqtt.brokers:
            self.reporting = open_reporting(
                s, profile.name, on_fault=self.report_fault, telemetry=self._telemetry, on_command=command_handler(self)
            )
        sinks = [f for f in (self.printer, self.reporting and self.reporting.sink) if f]
        emit = EventFanout(*sinks, on_error=lambda sink, exc: log.error("event sink failed: %s", exc))
        if self.pipeline_factory is None:
            self.pipeline_factory = Pipeline
        self.t_start, epoch_s = time.monotonic(), time.time()
        self.pipeline = pipeline = self.pipeline_factory(
            s, profile, emit, epoch_s, seq=getattr(self.reporting, "seq", None), leds=self.leds
        )
        initial = gpio.initial()
        pipeline.start(0.0, hook_off=initial["hook_off"], muted=initial["muted"])
        self.source = source = open_source(s.audio, scenario=self.scenario)
        self.capture = CaptureThread(source, self.mailbox, s.audio.reopen_s, self.audio_hb).start()
        if self.scenario is not None:
            self.driver = ScenarioDriver(self.scenario, gpio)
        self._wait_first_audio()
        period_s = self.notifier.watchdog_period()
        if period_s:
            self.pinger = WatchdogPinger(self.notifier, [self.audio_hb, self.rules_hb], period_s).start()
        self.notifier.ready(f"station {s.station.id}: running, profile {profile.name}")
        log.info(
            "running: profile %s, audio %s, gpio %s",
            profile.name,
            source.name,
            "mock" if self.simulate else (s.gpio.pin_factory or "default"),
        )

    def _wait_first_audio(self) -> None:
        """READY means the audio path was tried: wait for its first block or its first error."""
        deadline = time.monotonic() + READY_WAIT_S
        while time.monotonic() < deadline:
            messages, blocks = self.mailbox.take(0.05)
            self._handle(messages, blocks)
            if blocks or any(isinstance(m, AudioFailure) for m in messages):
                return

    def _install_signals(self) -> None:
        self._sig_r, self._sig_w = sig_r, sig_w = socket.socketpair()
        for sock in (sig_r, sig_w):
            sock.setblocking(False)
        signal.set_wakeup_fd(sig_w.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            # A Python-level handler is needed so the default action (die) is not taken;
            # the work happens in the main loop, which reads the signal number from the pipe.
            self._old_handlers[signum] = signal.signal(signum, lambda *_: None)

    def _read_signals(self) -> None:
        if self._sig_r is None:
            return
        try:
            data = self._sig_r.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        for signum in data:
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("%s: stopping", signal.Signals(signum).name)
                self._stop = True
            elif signum == signal.SIGHUP:
                self._reload = True

    # ---- the rules loop -----------------------------------------------------------------
    def _on_gpio(self, t_mono: float, name: str, value) -> None:
        self.mailbox.put(InputEdge(t_mono, name, value))  # unbounded: never drop an edge

    def call_in_loop(self, fn, timeout_s: float = 5.0):
        """Run fn on the rules loop (which owns the pipeline) and return its result."""
        future: Future = Future()
        self.mailbox.put(LoopCall(fn, future))
        return future.result(timeout_s)

    def apply_profile(self, profile) -> None:
        self.profile = profile
        if self.pipeline is not None:
            self.pipeline.apply_profile(profile)

    def set_agent(self, agent: str | None) -> None:
        """`agent` command, on the rules loop: from now on events, status and state name this agent."""
        self._running().events.agent = agent or None
        if self.reporting is not None:
            self.reporting.set_agent(agent)

    def request_restart(self) -> None:
        """`restart` command: exit non-zero after a clean stop, so Restart=on-failure starts us again."""
        log.info("restart requested by command")
        self.exit_code = RESTART_EXIT_CODE
        self._stop = True

    def report_fault(self, component: str, detail: str, cleared: bool = False) -> None:
        """A fault (or its clearing) for the station to emit and cue. From any thread: paho's, the
        sender's, or the rules loop itself (storage faults raised inside its event sink); never
        blocks, the rules loop applies it."""
        self.mailbox.put(FaultReport(component, detail, cleared))

    def _telemetry(self) -> dict:
        cap = self.capture
        return {
            "audio_ok": self.fault is None,
            "audio_source": getattr(self.source, "name", None),
            "audio_dropped_blocks": cap.dropped if cap else 0,
            "audio_opens": cap.opens if cap else 0,
            **echo_telemetry(self.pipeline),
        }

    def _publish_state(self, now: float) -> None:
        if self.reporting is None or now < self._state_due:
            return
        self._state_due = now + STATE_EVERY_S
        state = self._running().station.state
        if state != self._last_state:
            self._last_state = state
            self.reporting.publish_state(state)

    def request_stop(self) -> None:
        self._stop = True

    def run(self) -> int:
        s = self.settings.audio
        late_s = max(0.25, 3 * s.buffer_ms / 1000)
        while not self._stop:
            self.rules_hb.beat()
            self._handle(*self.mailbox.take(WAIT_S))
            self._read_signals()
            if self._reload:
                self._reload = False
                self.reload()
            now = self.now()
            if self.driver is not None:
                self.driver.step(now)
                if self.driver.finished(now):
                    log.info("scenario finished")
                    break
            if now - self._last_audio_t > s.stall_fault_s and self.fault is None:
                self._raise_fault(now, f"no audio for {s.stall_fault_s:g} s")
            if now - self._audio_end_t > late_s:
                # Audio is late or gone: the rules keep time on the wall clock.
                self._flush_inputs(now - late_s)
                pipeline = self._running()
                pipeline.advance(max(pipeline.t, now - late_s))
            self._publish_state(now)
        return self.exit_code

    def _handle(self, messages: list[Message], blocks: list[AudioBlock]) -> None:
        for message in messages:
            self._handle_message(message)
        for block in blocks:
            self._feed(block)

    def _handle_message(self, message: Message) -> None:
        match message:
            case InputEdge(t_mono, name, value):
                self._pending_inputs.append((t_mono - self.t_start, name, value))
            case LoopCall(fn, future):
                try:
                    future.set_result(fn())
                except Exception as exc:
                    future.set_exception(exc)
            case FaultReport(component, detail, cleared):
                pipeline = self._running()
                t = max(self.now(), pipeline.t)
                if cleared:
                    pipeline.station.on_fault_cleared(t, component)
                else:
                    pipeline.station.on_fault(t, component, detail)
            case AudioFailure(t_mono, detail):
                if self.fault is None:
                    self._raise_fault(t_mono - self.t_start, detail)

    def _feed(self, block: AudioBlock) -> None:
        pipeline = self._running()
        t_arrival, tx, rx = block.t_mono - self.t_start, block.tx, block.rx
        if tx is None and rx is None:  # a scenario without audio: digital silence, at the real pace
            tx = self._zeros(block.frames)
        block_s = block.frames / self.settings.audio.rate_hz
        t0 = self._audio_end_t
        if abs((t_arrival - block_s) - t0) > 0.5:  # first block, or after a gap: resync to the wall clock
            t0 = t_arrival - block_s
        t0 = max(t0, pipeline.t)
        t1 = t0 + block_s
        inputs = [(max(t, t0), name, v) for t, name, v in self._pending_inputs if t < t1]
        self._pending_inputs = [i for i in self._pending_inputs if i[0] >= t1]
        pipeline.feed(t0, tx, rx, inputs)
        self._audio_end_t, self._last_audio_t = t1, t_arrival
        if self.fault is not None:
            log.info("audio: back (%s)", getattr(self.source, "name", None))
            self.fault = None
            pipeline.station.on_fault_cleared(t1, "audio")
            self.notifier.status(f"station {self.settings.station.id}: running")

    def _zeros(self, frames: int) -> np.ndarray:
        if self._silence is None or len(self._silence) != frames:
            self._silence = np.zeros(frames, dtype=np.int16)
        return self._silence

    def _flush_inputs(self, t: float) -> None:
        pipeline = self._running()
        for t_in, name, value in [i for i in self._pending_inputs if i[0] <= t]:
            pipeline.input(max(t_in, pipeline.t), name, value)
        self._pending_inputs = [i for i in self._pending_inputs if i[0] > t]

    def _raise_fault(self, t: float, detail: str) -> None:
        self.fault = detail
        log.warning("audio fault: %s", detail)
        pipeline = self._running()
        pipeline.station.on_fault(max(t, pipeline.t), "audio", detail)
        self.notifier.status(f"station {self.settings.station.id}: audio fault: {detail}")

    def reload(self) -> None:
        """SIGHUP: re-read the config file and apply its profile; other sections need a restart."""
        self.notifier.reloading()
        reload_profile(self)
        self.notifier.ready()

    # ---- shutdown -----------------------------------------------------------------------
    def shutdown(self, drain_timeout_s: float = 10.0) -> None:
        self.notifier.stopping()
        if self.pinger:
            self.pinger.stop()
        if self.capture:
            self.capture.stop()
        if self.pipeline is not None:
            self._flush_inputs(float("inf"))
            self.pipeline.stop(max(self.now(), self.pipeline.t))
            self.pipeline = None
        if self.reporting is not None:
            reporting, self.reporting = self.reporting, None
            if reporting.drain(drain_timeout_s):
                log.warning("outbox not drained within %g s; it is kept on disk", drain_timeout_s)
            reporting.close()
        for obj in (self.leds, self.gpio):
            if obj is not None:
                obj.close()
        self.leds = self.gpio = None
        if self.factory is not None:
            self.factory.close()
            self.factory = None
        if self._sig_r is not None:
            signal.set_wakeup_fd(-1)
            for signum, handler in self._old_handlers.items():
                signal.signal(signum, handler)
            for sock in (self._sig_r, self._sig_w):
                if sock is not None:
                    sock.close()
            self._sig_r = self._sig_w = None
        self.notifier.close()


class _JournalFormatter(logging.Formatter):
    """Under systemd (JOURNAL_STREAM set) prefix `<priority>` so the journal files each line at its level."""

    PRIORITY: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
        logging.CRITICAL: 2,
    }

    def format(self, record):
        return f"<{self.PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def setup_logging(settings: Settings) -> None:
    """Journal-friendly stderr lines: the journal adds the time; we add the station id."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        fmt = f"[{settings.station.id}] %(levelname)s %(name)s: %(message)s"
        handler.setFormatter(_JournalFormatter(fmt) if os.environ.get("JOURNAL_STREAM") else logging.Formatter(fmt))
        root.addHandler(handler)
    root.setLevel(settings.station.log_level.upper())


def run_service(settings: Settings, *, simulate: bool = False, scenario_path: str | None = None, printer=None) -> int:
    """`headset-station run`: the station until SIGTERM (or the end of a simulated scenario)."""
    setup_logging(settings)
    scenario = None
    if scenario_path:
        scenario = load_scenario(scenario_path)
    if simulate:
        settings = simulated_settings(settings, scenario)
    service = Service(settings, simulate=simulate, scenario=scenario, printer=printer)
    try:
        service.setup()
        return service.run()
    finally:
        service.shutdown()
