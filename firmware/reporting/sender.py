"""The sender: the one thread that moves outbox rows into paho and acknowledged rows out.

It publishes rows in `seq` order at QoS 1, keeps at most `mqtt.inflight` unacknowledged,
and spends tokens of a bucket refilled at `mqtt.drain_per_s`, so a backlog after an outage
drains at a bounded rate while new events queue behind it. paho's `on_publish` only appends
the `mid` to a deque (it runs with paho's message lock held); this thread maps it back to the
outbox row and deletes the acknowledged rows in one transaction per wake-up.

After a reconnect paho first re-sends what was in flight; the sender waits for those acks
(the barrier, at most RESEND_BARRIER_S) before sending newer rows, so subscribers see the
first copy of every event in `seq` order.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from paho.mqtt.enums import MQTTErrorCode

from firmware.protocol.topics import QOS_EVENT, QOS_TELEMETRY

if TYPE_CHECKING:
    from firmware.reporting.reporter import Reporter

RESEND_BARRIER_S = 10.0  # give up waiting for paho's re-sends after this long; re-publish from the outbox


class Sender:
    """Moves outbox rows into paho and acknowledged rows out of the outbox (one thread)."""

    def __init__(self, reporter: Reporter):
        self.r = reporter
        m = reporter.settings.mqtt
        self.rate_per_s = float(m.drain_per_s)
        self.burst = max(1.0, min(self.rate_per_s, m.inflight))
        self.tokens = self.burst
        self.window = m.inflight
        self.inflight: dict[int, int] = {}  # mid -> outbox pos
        self.barrier: set[int] = set()
        self.barrier_until = 0.0
        self.telemetry_s = m.telemetry_s
        self.route = {"event": (reporter.topics.event, QOS_EVENT),  # row kind -> (topic, QoS)
                      "telemetry": (reporter.topics.telemetry, QOS_TELEMETRY)}

    def run(self) -> None:
        r = self.r
        last = time.monotonic()
        next_telemetry = last + self.telemetry_s
        wait_s = 0.0
        while True:
            r._wake.wait(wait_s)
            r._wake.clear()
            self.take_acks()
            if r._stopping:
                return
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - last) * self.rate_per_s)
            last = now
            if now >= next_telemetry:
                next_telemetry = now + self.telemetry_s
                r.publish_telemetry(r.telemetry() if r.telemetry else {})
            wait_s = min(1.0, max(0.0, next_telemetry - now))
            if not r.connected:
                continue
            if r._reconnected:
                r._reconnected = False
                self.barrier = set(self.inflight)  # paho re-sends these first
                if self.barrier:
                    r.log.info("mqtt: waiting for %d re-sent messages before sending newer ones", len(self.barrier))
                self.barrier_until = now + RESEND_BARRIER_S
            if self.barrier:
                if now < self.barrier_until:
                    wait_s = min(wait_s, 0.05)
                    continue
                r.log.warning("mqtt: %d re-sent messages unacknowledged; publishing them again", len(self.barrier))
                for mid in self.barrier:
                    self.inflight.pop(mid, None)
                self.barrier.clear()
            room = min(self.window - len(self.inflight), int(self.tokens))
            if room <= 0:
                if self.tokens < 1:
                    wait_s = min(wait_s, (1 - self.tokens) / self.rate_per_s)
                continue
            rows = r.outbox.pending(room, skip=self.inflight.values())
            for row in rows:
                topic, qos = self.route[row.kind]
                info = r.client.publish(topic, row.payload, qos)
                if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                    wait_s = min(wait_s, 0.1)  # paho refused (e.g. mid clash): retry shortly
                    break
                self.inflight[info.mid] = row.pos
                self.tokens -= 1
            if len(rows) == room and self.tokens < 1:
                wait_s = min(wait_s, (1 - self.tokens) / self.rate_per_s)

    def take_acks(self) -> None:
        positions = []
        while self.r._acked:
            mid = self.r._acked.popleft()
            self.barrier.discard(mid)
            pos = self.inflight.pop(mid, None)
            if pos is not None:
                positions.append(pos)
        self.r.outbox.ack(positions)
