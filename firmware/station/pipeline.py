"""The one code path from audio and inputs to events, shared by `replay` and `run`.

A `Pipeline` owns the two channel analysers and the station logic. Drivers differ only
in the clock and the sources: `replay` feeds recorded blocks on a virtual clock as fast as
the CPU allows; `run` feeds live capture blocks and GPIO edges on the wall clock and calls
`advance` between blocks so timers fire even when audio stalls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from firmware.analysis.analyzer import ChannelAnalyzer
from firmware.config.profiles import Profile
from firmware.config.settings import Settings
from firmware.protocol.envelope import EmitFn, EventFactory, SeqSource
from firmware.station.station import Station

CHANNELS = ("tx", "rx")


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        profile: Profile,
        emit: EmitFn,
        epoch_s: float,
        seq: SeqSource | None = None,
        leds=None,
    ):
        self.settings = settings
        self.profile = profile
        self.events = EventFactory(
            settings.station.id, epoch_s, seq, desk=settings.station.desk, agent=settings.station.agent or None
        )
        self.station = Station(settings, profile, self.events, emit, leds)
        audio, analysis = settings.audio, settings.analysis
        self.rate_hz = audio.rate_hz
        self.analyzers = {
            ch: ChannelAnalyzer(
                ch,
                audio.rate_hz,
                audio.frame_ms,
                analysis,
                profile.low_dbfs,
                profile.noise_dbfs,
                profile.snr_db,
                gain_db=audio.tx_gain_db if ch == "tx" else audio.rx_gain_db,
                detect_tones=(ch == "rx"),
                echo=(ch == "rx" and analysis.echo == "auto"),
            )
            for ch in CHANNELS
        }
        self._tx, self._rx = self.analyzers["tx"], self.analyzers["rx"]
        self.t = 0.0
        self._silence = np.zeros(0, dtype=np.int16)

    def start(self, t: float, hook_off: bool = False, muted: bool = False) -> None:
        self.t = t
        self.station.start(t, hook_off=hook_off, muted=muted)

    def feed(self, t0: float, tx: np.ndarray | None, rx: np.ndarray | None, inputs=()) -> list:
        """One block of both channels starting at t0 (None = digital silence), and the
        input edges `(t, name, value)` that fall inside it, handled in time order.
        Returns the block's analysis edges (what `analyze` reports)."""
        # (plain statements, not a generator: this runs for every 30 ms block of the live path)
        if tx is None or rx is None:
            n = len(tx) if tx is not None else len(rx) if rx is not None else 0
            if len(self._silence) != n:
                self._silence = np.zeros(n, dtype=np.int16)  # reused: a mono capture sends None every block
            if tx is None:
                tx = self._silence
            if rx is None:
                rx = self._silence
        else:
            n = len(tx) if len(tx) >= len(rx) else len(rx)
        atx = self._tx
        items = atx.process(t0, tx)
        # The agent's frames of this block are the echo reference of the customer's.
        items += self._rx.process(t0, rx, atx.block_ref)
        station = self.station
        if inputs:
            merged: list[tuple[float, int, Any]] = [(e.t, 1, e) for e in items]
            merged += [(t, 0, (t, name, value)) for t, name, value in inputs]
            merged.sort(key=lambda x: (x[0], x[1]))
            for _t, kind, item in merged:
                if kind:
                    station.on_edge(item)
                else:
                    station.on_input(*item)
        else:
            if len(items) > 1:
                items.sort(key=lambda e: e.t)
            for edge in items:
                station.on_edge(edge)
        self.t = t0 + n / self.rate_hz
        station.advance(self.t)
        return items

    def input(self, t: float, name: str, value) -> None:
        self.station.on_input(t, name, value)

    def advance(self, t: float) -> None:
        self.t = max(self.t, t)
        self.station.advance(t)

    def apply_profile(self, profile: Profile) -> None:
        """Apply new profile values without a restart (set-config, SIGHUP)."""
        self.profile = profile
        for analyzer in self.analyzers.values():
            analyzer.set_thresholds(profile.low_dbfs, profile.noise_dbfs, profile.snr_db)
        self.station.apply_profile(profile)

    def stop(self, t: float) -> None:
        self.station.stop(t)


def echo_telemetry(pipeline: Pipeline | None) -> dict:
    """The agent->customer channel coupling for telemetry: dB and delay, None while unknown
    (no pipeline yet, echo analysis off, or no consistent echo seen)."""
    rx = pipeline.analyzers["rx"] if pipeline is not None else None
    return {
        "echo_coupling_db": rx.echo_coupling_db if rx is not None else None,
        "echo_delay_ms": rx.echo_delay_ms if rx is not None else None,
    }
