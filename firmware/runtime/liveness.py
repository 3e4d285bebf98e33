"""Liveness: heartbeats of the service's loops and the systemd watchdog pinger.

Each loop (audio capture, rules) bumps its own `Heartbeat` every pass, even while it
only waits. The `WatchdogPinger` thread sends WATCHDOG=1 only while *every* heartbeat is
fresh, so a hung loop stops the pings and systemd restarts the service (`Restart=`),
while a lost audio device (the capture loop keeps retrying) does not.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, name: str):
        self.name = name
        self.last_s = time.monotonic()

    def beat(self) -> None:
        self.last_s = time.monotonic()  # a float store is atomic under the GIL

    def age_s(self, now_s: float | None = None) -> float:
        return (time.monotonic() if now_s is None else now_s) - self.last_s


class WatchdogPinger:
    """Pings `notifier.watchdog_ping()` every period/4 while all heartbeats are younger than max_age_s."""

    def __init__(self, notifier, heartbeats, period_s: float, max_age_s: float | None = None):
        self.notifier = notifier
        self.heartbeats = list(heartbeats)
        self.interval_s = period_s / 4
        self.max_age_s = max_age_s if max_age_s is not None else period_s / 2
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self.pings = 0
        self.stale: str | None = None

    def start(self) -> WatchdogPinger:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            stale = [hb.name for hb in self.heartbeats if hb.age_s(now) > self.max_age_s]
            if stale:
                if self.stale is None:
                    log.error(
                        "watchdog: %s loop not responding; no more pings (systemd will restart us)", ", ".join(stale)
                    )
                self.stale = ", ".join(stale)
                continue
            self.stale = None
            self.notifier.watchdog_ping()
            self.pings += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
