"""Floor alerts: rules from a small TOML file, evaluated on the live fleet model, delivered
to the board, to a webhook and as MQTT messages.

Conditions (config/alerts.example.toml documents every key):
- `hold_over`        a customer on hold at or past `[hold] limit_s`
- `dead_air`         the station has cued dead air ("say_wait"/"say_busy") for `[dead_air] after_s`
- `offline_in_call`  a station went offline (Last Will or stop) while its last state was a call
- `fault`            a station reports a fault (one alert per component)
- `violations`       at least `[violations] max_count` rule violations within `window_s`

`AlertEngine.evaluate(fleet, now_s)` returns the alerts raised and cleared since the last
call: one `raised` per occurrence of a condition and one `cleared` when it ends, never a
repeat while it holds (no storms). Each occurrence has its own `id`. `WebhookSender` POSTs
each as JSON from a thread of its own, with a bounded timeout, retrying with exponential
back-off until `give_up_after_s`; a receiver can deduplicate by `id` + `state`.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import random
import threading
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from headset_fleet.credentials import FLEET_ALERT_TOPIC
from headset_fleet.errors import FleetInputError
from headset_fleet.monitor import HOLD_LIMIT_S, HOLD_WARN_S

log = logging.getLogger(__name__)

DEFAULT_TOPIC = FLEET_ALERT_TOPIC
RULES = ("hold_over", "dead_air", "offline_in_call", "fault", "violations")


class AlertRulesError(FleetInputError):
    """The alert rules file is missing, not TOML, or has an unknown or out-of-range key."""

    exit_code = 78


@dataclass(frozen=True)
class AlertRules:
    hold_limit_s: float = HOLD_LIMIT_S
    hold_warn_s: float = HOLD_WARN_S
    hold_enabled: bool = True
    dead_air_after_s: float = 15.0
    dead_air_enabled: bool = True
    offline_in_call_enabled: bool = True
    fault_enabled: bool = True
    violations_max_count: int = 5
    violations_window_s: float = 600.0
    violations_enabled: bool = True
    sound: bool = False
    webhook_url: str = ""
    webhook_timeout_s: float = 5.0
    webhook_backoff_max_s: float = 60.0
    webhook_give_up_after_s: float = 3600.0
    mqtt_topic: str = DEFAULT_TOPIC  # "" = do not publish alerts over MQTT


# TOML layout: section -> {key: (AlertRules field, type, low, high)}
_SCHEMA: dict[str, dict[str, tuple[str, type, float | None, float | None]]] = {
    "hold": {
        "limit_s": ("hold_limit_s", float, 1.0, 86400.0),
        "warn_s": ("hold_warn_s", float, 1.0, 86400.0),
        "enabled": ("hold_enabled", bool, None, None),
    },
    "dead_air": {
        "after_s": ("dead_air_after_s", float, 0.0, 86400.0),
        "enabled": ("dead_air_enabled", bool, None, None),
    },
    "offline_in_call": {"enabled": ("offline_in_call_enabled", bool, None, None)},
    "fault": {"enabled": ("fault_enabled", bool, None, None)},
    "violations": {
        "max_count": ("violations_max_count", int, 1, 100000),
        "window_s": ("violations_window_s", float, 1.0, 3600.0),
        "enabled": ("violations_enabled", bool, None, None),
    },
    "board": {"sound": ("sound", bool, None, None)},
    "webhook": {
        "url": ("webhook_url", str, None, None),
        "timeout_s": ("webhook_timeout_s", float, 0.1, 60.0),
        "backoff_max_s": ("webhook_backoff_max_s", float, 0.1, 3600.0),
        "give_up_after_s": ("webhook_give_up_after_s", float, 1.0, 7 * 86400.0),
    },
    "mqtt": {"topic": ("mqtt_topic", str, None, None)},
}


def load_rules(path: str | None) -> AlertRules:
    """AlertRules from a TOML file (None: the defaults); AlertRulesError naming file and key."""
    if not path:
        return AlertRules()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise AlertRulesError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AlertRulesError(f"{path}: not TOML: {exc}") from None
    values: dict = {}
    for section, table in data.items():
        schema = _SCHEMA.get(section)
        if schema is None or not isinstance(table, dict):
            raise AlertRulesError(f"{path}: [{section}]: unknown section (known: {', '.join(_SCHEMA)})")
        for key, value in table.items():
            if key not in schema:
                raise AlertRulesError(f"{path}: {section}.{key}: unknown key (known: {', '.join(schema)})")
            name, kind, low, high = schema[key]
            values[name] = _check(path, f"{section}.{key}", value, kind, low, high)
    rules = AlertRules(**values)
    if rules.hold_warn_s > rules.hold_limit_s:
        raise AlertRulesError(f"{path}: hold.warn_s: {rules.hold_warn_s:g} is past hold.limit_s {rules.hold_limit_s:g}")
    if rules.webhook_url and not rules.webhook_url.startswith(("http://", "https://")):
        raise AlertRulesError(f"{path}: webhook.url: {rules.webhook_url!r} is not an http:// or https:// URL")
    if rules.mqtt_topic and any(c in rules.mqtt_topic for c in "+#\0"):
        raise AlertRulesError(f"{path}: mqtt.topic: {rules.mqtt_topic!r} must not contain + or #")
    return rules


def _check(path: str, name: str, value, kind, low, high):
    if kind is bool:
        if not isinstance(value, bool):
            raise AlertRulesError(f"{path}: {name}: {value!r} is not true or false")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise AlertRulesError(f"{path}: {name}: {value!r} is not a string")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise AlertRulesError(f"{path}: {name}: {value!r} is not {'an integer' if kind is int else 'a number'}")
    if not math.isfinite(value) or not low <= value <= high:
        raise AlertRulesError(f"{path}: {name}: {value!r} is not between {low:g} and {high:g}")
    return kind(value)


def _iso(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AlertEngine:
    """Turns the fleet model into alert occurrences: one `raised`, later one `cleared`."""

    def __init__(self, rules: AlertRules):
        self.rules = rules
        self.active: dict[tuple, dict] = {}  # condition key -> its raised alert

    def conditions(self, fleet: dict, now_s: float) -> dict[tuple, tuple]:
        """{key: (rule, view, detail)} for every condition that holds now."""
        r = self.rules
        found: dict[tuple, tuple] = {}
        window_start = now_s - r.violations_window_s
        for (site, station), v in fleet.items():
            if v.online:
                if r.hold_enabled and v.hold_since_s is not None and v.hold_s(now_s) >= r.hold_limit_s:
                    found[("hold_over", site, station, v.call)] = (
                        "hold_over",
                        v,
                        f"on hold for over {r.hold_limit_s:g} s",
                    )
                if (
                    r.dead_air_enabled
                    and v.dead_air_since_s is not None
                    and v.call is not None
                    and v.dead_air_s(now_s) >= r.dead_air_after_s
                ):
                    found[("dead_air", site, station, v.call)] = (
                        "dead_air",
                        v,
                        f"dead air cued for {r.dead_air_after_s:g} s",
                    )
            elif r.offline_in_call_enabled and v.call is not None:
                found[("offline_in_call", site, station, v.call)] = ("offline_in_call", v, "went offline during a call")
            if r.fault_enabled:
                for component, detail in v.faults.items():
                    found[("fault", site, station, component)] = ("fault", v, f"{component}: {detail}".rstrip(": "))
            if r.violations_enabled and len(v.violations) >= r.violations_max_count:
                count = v.violations_since(window_start)
                if count >= r.violations_max_count:
                    found[("violations", site, station)] = (
                        "violations",
                        v,
                        f"{count} rule violations in {r.violations_window_s / 60:g} min",
                    )
        return found

    def evaluate(self, fleet: dict, now_s: float) -> list[dict]:
        """Alerts raised and cleared since the last call, in that order."""
        found = self.conditions(fleet, now_s)
        out = []
        for key in [k for k in self.active if k not in found]:
            alert = dict(self.active.pop(key), state="cleared", cleared_at=_iso(now_s))
            out.append(alert)
        for key, (rule, v, detail) in found.items():
            if key in self.active:
                continue
            alert = {
                "id": uuid.uuid4().hex,
                "state": "raised",
                "rule": rule,
                "site": v.site,
                "station": v.station,
                "desk": v.desk,
                "agent": v.agent,
                "name": v.name,
                "call": v.call,
                "detail": detail,
                "raised_at": _iso(now_s),
            }
            self.active[key] = alert
            out.append(alert)
        return out

    def active_alerts(self) -> list[dict]:
        return sorted(self.active.values(), key=lambda a: a["raised_at"])


class WebhookSender:
    """POSTs alerts as JSON to one URL from its own thread, retrying with back-off.

    `send()` never blocks the caller. Attempts are spaced 1, 2, 4 ... s (with jitter) up to
    `backoff_max_s`, each bounded by `timeout_s`; an alert still undelivered after
    `give_up_after_s` is logged and dropped. Delivered and given-up counts are kept."""

    def __init__(
        self, url: str, *, timeout_s: float = 5.0, backoff_max_s: float = 60.0, give_up_after_s: float = 3600.0
    ):
        self.url = url
        self.timeout_s = timeout_s
        self.backoff_max_s = backoff_max_s
        self.give_up_after_s = give_up_after_s
        self.delivered = 0
        self.given_up = 0
        self._heap: list = []  # (due_s, order, first_s, attempt, body)
        self._order = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="alert-webhook", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def send(self, alert: dict) -> None:
        body = json.dumps(alert, ensure_ascii=False).encode()
        now = time.monotonic()
        with self._cond:
            self._order += 1
            heapq.heappush(self._heap, (now, self._order, now, 0, body))
            self._cond.notify()

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "headset-fleet-board"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            response.read(65536)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(None if not self._heap else max(0.0, self._heap[0][0] - time.monotonic()))
                if self._stop:
                    return
                _due, order, first, attempt, body = heapq.heappop(self._heap)
            try:
                self._post(body)
            except (OSError, urllib.error.URLError, ValueError) as exc:  # HTTPError is a URLError
                now = time.monotonic()
                if now - first >= self.give_up_after_s:
                    self.given_up += 1
                    log.error(
                        "alert webhook %s: giving up on an alert after %d attempts: %s", self.url, attempt + 1, exc
                    )
                    continue
                delay = min(self.backoff_max_s, 2.0**attempt) * random.uniform(0.8, 1.0)
                log.warning("alert webhook %s: %s; retrying in %.1f s", self.url, exc, delay)
                with self._cond:
                    heapq.heappush(self._heap, (now + delay, order, first, attempt + 1, body))
            else:
                self.delivered += 1

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=self.timeout_s + 1.0)


def rule_names() -> tuple[str, ...]:
    return RULES


def rules_as_dict(rules: AlertRules) -> dict:
    return {f.name: getattr(rules, f.name) for f in fields(rules)}
