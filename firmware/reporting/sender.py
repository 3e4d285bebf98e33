"""The sender: the one thread that moves outbox rows into paho and acknowledged rows out.

It publishes rows in `seq` order at QoS 1, keeps at most `mqtt.inflight` unacknowledged,
and spends tokens of a bucket refilled at `mqtt.drain_per_s`, so a backlog after an outage
drains at a bounded rate while new events queue behind it.

The `Sender` owns everything that crosses threads on this path: its wake event, the queue
of acknowledged message ids, the connection/reconnect state and the in-flight map. Other
threads only call its methods:

- `on_ack(mid)` from paho's `on_publish` (paho's network thread, with paho's message lock
  held, possibly before `publish()` has even returned the mid to this thread): the mid is
  queued and handled on the sender thread, which maps it back to its outbox row and
  deletes the acknowledged rows in one transaction per wake-up;
- `on_connected()` / `on_disconnected()` from paho's connect callbacks;
- `wake()` when new rows were queued, `stop()` to end the thread.

After a reconnect paho first re-sends what was in flight; the sender waits for those acks
(the barrier, at most RESEND_BARRIER_S) before sending newer rows, so subscribers see the
first copy of every event in `seq` order.

Rows an outbox could not delete yet (a full disk) stay out of the send window and are
deleted again on the next wake-up; events the outbox holds in memory because the disk was
full are retried from here at least once a second (`Outbox.flush_held`).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from paho.mqtt.enums import MQTTErrorCode

from firmware.errors import StationError
from firmware.protocol.topics import QOS_EVENT, QOS_TELEMETRY, Topics
from firmware.reporting.outbox import Outbox

log = logging.getLogger(__name__)

RESEND_BARRIER_S = 10.0  # give up waiting for paho's re-sends after this long; re-publish from the outbox
RETRY_S = 1.0  # the longest the thread sleeps: telemetry, held events and failed deletes are retried this often

FaultFn = Callable[[str, str, bool], None]  # (component, detail, cleared)


class Sender:
    """Moves outbox rows into paho and acknowledged rows out of the outbox (one thread)."""

    def __init__(
        self,
        client,
        outbox: Outbox,
        topics: Topics,
        mqtt_settings,
        *,
        on_telemetry_due: Callable[[], None] | None = None,
        on_fault: FaultFn | None = None,
    ):
        self.client = client
        self.outbox = outbox
        m = mqtt_settings
        self.rate_per_s = float(m.drain_per_s)
        self.burst = max(1.0, min(self.rate_per_s, m.inflight))
        self.tokens = self.burst
        self.window = m.inflight
        self.telemetry_s = m.telemetry_s
        self.on_telemetry_due = on_telemetry_due
        self.on_fault = on_fault
        self.route = {
            "event": (topics.event, QOS_EVENT),  # row kind -> (topic, QoS)
            "telemetry": (topics.telemetry, QOS_TELEMETRY),
        }
        # Shared with other threads, only through the methods below.
        self._wake = threading.Event()
        self._acks: collections.deque[int] = collections.deque()  # mids from on_publish
        self._lock = threading.Lock()  # guards _connected and _reconnected together
        self._connected = False
        self._reconnected = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Owned by the sender thread alone.
        self._inflight: dict[int, int] = {}  # mid -> outbox pos
        self._unacked_deletes: list[int] = []  # acknowledged positions the outbox could not delete yet
        self._barrier: set[int] = set()
        self._barrier_until = 0.0

    # --- called from other threads ------------------------------------------------------------
    def on_ack(self, mid: int) -> None:
        """paho's on_publish: queue the mid for the sender thread; never blocks."""
        self._acks.append(mid)
        self._wake.set()

    def on_connected(self) -> None:
        """A (re)connect: what was in flight is re-sent by paho first (the barrier)."""
        with self._lock:
            self._connected = True
            self._reconnected = True
        self._wake.set()

    def on_disconnected(self) -> None:
        with self._lock:
            self._connected = False

    def wake(self) -> None:
        """New rows are in the outbox (or were acknowledged): look again now."""
        self._wake.set()

    def start(self) -> Sender:
        self._thread = threading.Thread(target=self._run_forever, name="mqtt-sender", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """End the thread (what is still queued stays in the outbox); safe to call twice."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout_s)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # --- the sender thread -----------------------------------------------------------------------
    def _run_forever(self) -> None:
        failing = False
        while not self._stopping.is_set():
            try:
                self.run()
                return
            except Exception as exc:  # e.g. the outbox became unreadable: keep retrying, events stay on disk
                log.exception("mqtt: sender failed")
                if not failing and self.on_fault is not None:
                    failing = True
                    detail = str(exc) if isinstance(exc, StationError) else f"{type(exc).__name__}: {exc}"
                    self.on_fault("storage", f"cannot read the outbox to send ({detail})", False)
                self._stopping.wait(RETRY_S)

    def run(self) -> None:
        """The loop; returns once `stop()` was called."""
        last = time.monotonic()
        next_telemetry = last + self.telemetry_s
        wait_s = 0.0
        while True:
            self._wake.wait(wait_s)
            self._wake.clear()
            self._take_acks()
            if self._stopping.is_set():
                return
            if self.outbox.held:
                self.outbox.flush_held()
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - last) * self.rate_per_s)
            last = now
            if now >= next_telemetry:
                next_telemetry = now + self.telemetry_s
                if self.on_telemetry_due is not None:
                    self.on_telemetry_due()
            wait_s = min(RETRY_S, max(0.0, next_telemetry - now))
            with self._lock:
                connected, reconnected = self._connected, self._reconnected
                self._reconnected = False
            if not connected:
                continue
            if reconnected:
                self._barrier = set(self._inflight)  # paho re-sends these first
                if self._barrier:
                    log.info("mqtt: waiting for %d re-sent messages before sending newer ones", len(self._barrier))
                self._barrier_until = now + RESEND_BARRIER_S
            if self._barrier:
                if now < self._barrier_until:
                    wait_s = min(wait_s, 0.05)
                    continue
                log.warning("mqtt: %d re-sent messages unacknowledged; publishing them again", len(self._barrier))
                for mid in self._barrier:
                    self._inflight.pop(mid, None)
                self._barrier.clear()
            room = min(self.window - len(self._inflight), int(self.tokens))
            if room <= 0:
                if self.tokens < 1:
                    wait_s = min(wait_s, (1 - self.tokens) / self.rate_per_s)
                continue
            skip = [*self._inflight.values(), *self._unacked_deletes]
            rows = self.outbox.pending(room, skip=skip)
            for row in rows:
                topic, qos = self.route[row.kind]
                info = self.client.publish(topic, row.payload, qos)
                if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                    wait_s = min(wait_s, 0.1)  # paho refused (e.g. mid clash): retry shortly
                    break
                self._inflight[info.mid] = row.pos
                self.tokens -= 1
            if len(rows) == room and self.tokens < 1:
                wait_s = min(wait_s, (1 - self.tokens) / self.rate_per_s)

    def _take_acks(self) -> None:
        positions = self._unacked_deletes
        while self._acks:
            mid = self._acks.popleft()
            self._barrier.discard(mid)
            pos = self._inflight.pop(mid, None)
            if pos is not None:
                positions.append(pos)
        if not positions:
            return
        try:
            self.outbox.ack(positions)
        except StationError as exc:  # e.g. a full disk: delete them on a later wake-up, never re-send
            log.warning("mqtt: cannot delete %d acknowledged rows yet (%s)", len(positions), exc)
            self._unacked_deletes = positions
            return
        self._unacked_deletes = []
