"""MQTT topic names of one station (the README's event contract, "MQTT").

Every topic lives under `hs/<site>/<station>/`, so a broker ACL can give each station
exactly its own subtree (config/mosquitto/acl.example):

| topic               | direction | QoS | retained | payload                                   |
|---------------------|-----------|-----|----------|-------------------------------------------|
| `event`             | out       | 1   | no       | one event (firmware.events.to_json)       |
| `state`             | out       | 1   | yes      | current call/hold/cue/line state           |
| `status`            | out       | 1   | yes      | birth/death record, see below; Last Will  |
| `telemetry`         | out       | 1   | no       | audio health, outbox depth, faults      |
| `cmd/<name>`        | in        | 1   | no       | a command (firmware.commands)             |
| `cmd/<name>/reply`  | out       | 1   | no       | `{"ok": ..., "error": ...}`               |

`status` payloads are JSON with a Sparkplug-like session number `bdSeq`:
`{"status": "online", "bdSeq": 7, "boot_id": "...", ...}` is the birth record published on
every connect; the Last Will registered for that same connection is
`{"status": "offline", "bdSeq": 7, "boot_id": "...", "reason": "will"}`. A consumer keeps the
`bdSeq` of the latest birth and ignores an `offline` whose `bdSeq`/`boot_id` differ: that is
the will of an older connection arriving late (e.g. after a session takeover).
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware.errors import ConfigError

ROOT = "hs"
QOS_EVENT = 1
QOS_STATE = 1
QOS_STATUS = 1
QOS_TELEMETRY = 1  # telemetry goes through the outbox like events, so it is acknowledged too
QOS_COMMAND = 1
ALL_EVENTS = f"{ROOT}/+/+/event"  # what a collector subscribes to
ALL_STATUS = f"{ROOT}/+/+/status"


def check_level(name: str, value: str) -> str:
    """A site or station id must be one non-empty topic level without wildcards."""
    if not value or any(c in value for c in "/+#\0"):
        raise ConfigError(
            f"station.{name}: {value!r} must be non-empty and contain no '/', '+' or '#' (it is an MQTT topic level)"
        )
    return value


@dataclass(frozen=True)
class Topics:
    """The topics of one station; `Topics('site-1', 'desk-07').event` -> 'hs/site-1/desk-07/event'."""

    site: str
    station: str

    def __post_init__(self):
        check_level("site", self.site)
        check_level("id", self.station)

    @property
    def base(self) -> str:
        return f"{ROOT}/{self.site}/{self.station}"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def telemetry(self) -> str:
        return f"{self.base}/telemetry"

    @property
    def commands(self) -> str:
        """Subscription filter for incoming commands; one level only, so replies never match it."""
        return f"{self.base}/cmd/+"

    def reply(self, name: str) -> str:
        return f"{self.base}/cmd/{name}/reply"

    def command_name(self, topic: str) -> str | None:
        """'hs/s/st/cmd/ping' -> 'ping'; None for any other topic."""
        prefix = f"{self.base}/cmd/"
        if topic.startswith(prefix) and "/" not in topic[len(prefix) :]:
            return topic[len(prefix) :]
        return None


def parse(topic: str) -> tuple[str, str, str] | None:
    """'hs/site/station/rest...' -> (site, station, rest); None if not a station topic."""
    parts = topic.split("/", 3)
    if len(parts) != 4 or parts[0] != ROOT:
        return None
    return parts[1], parts[2], parts[3]
