"""Typed, validated station settings, loaded from TOML.

Each section of the config file is a frozen dataclass whose fields have real types
(`int`, `float`, `list[int]`, ...) and whose metadata carries a `Check` (range, choices,
string pattern, list items; firmware.config.validate). Every section checks itself when
it is built (so `Settings.replace` cannot make an invalid copy either), and `Settings`
checks what no single key can: duplicate GPIO pins, a stereo capture with one channel
twice, brokers that mix mqtt:// and mqtts://, the `[profile]` overrides and the
`[leds.cues]` table. `load_settings` reports *all* problems at once, each naming the key
and the reason, so `check-config` can list them for a technician; the service start and
`cmd/set-config` use the same checks. What needs the file system (files the service must
read, the state directory) is checked by firmware.runtime.preflight.
"""

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from firmware.config.extras import silero_missing
from firmware.config.leds import check_cue_overrides
from firmware.config.profiles import check_overrides
from firmware.config.tomlfile import TomlFileError, read_toml
from firmware.config.validate import TOPIC_LEVEL, TOPIC_LEVEL_DOC, Check, check_value, show
from firmware.errors import ConfigError
from firmware.protocol.brokers import parse_broker

NAME_MAX_CHARS = 64  # desk and agent names


def name_problem(value) -> str | None:
    """Why `value` is not a desk or agent name (a non-empty printable string of at most 64
    characters), or None if it is one."""
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    if len(value) > NAME_MAX_CHARS:
        return f"is {len(value)} characters long; at most {NAME_MAX_CHARS}"
    if not value.isprintable():
        return "has a control character"
    return None


def _optional_name(value: str) -> str | None:
    return name_problem(value) if value else None


def _zone_problem(name: str) -> str | None:
    if not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {show(name)} (an IANA name such as Asia/Shanghai)"
    return None


BCM_PIN = Check(lo=0, hi=27)


def _f(
    default,
    *,
    lo=None,
    hi=None,
    choices=None,
    pattern=None,
    pattern_doc="",
    items=None,
    length=None,
    validate=None,
    doc="",
):
    check = Check(
        lo=lo,
        hi=hi,
        choices=choices,
        pattern=pattern,
        pattern_doc=pattern_doc,
        items=items,
        length=length,
        validate=validate,
    )
    meta = {"check": check, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=functools.partial(type(default), default), metadata=meta)
    return field(default=default, metadata=meta)


def _brokers_problem(urls: list) -> str | None:
    schemes = set()
    for url in urls:
        try:
            schemes.add(parse_broker(url)[0])
        except (ConfigError, ValueError):  # ValueError: urlsplit refuses e.g. "mqtt://[::1"
            return f"{show(url)} is not an mqtt://host[:port] or mqtts://host[:port] URL"
    if len(schemes) > 1:
        return "mixes mqtt:// and mqtts://; use one scheme for all brokers"
    return None


def _three_pins(pins: list) -> str | None:
    return None if len(pins) == 3 else f"expected three BCM pins 0-27, got {show(pins)}"


@functools.cache
def _pin_factories() -> tuple[str, ...]:
    """gpiozero's pin factory names (its entry points; scanning them is slow, so once)."""
    return tuple(sorted({"mock", *(ep.name.lower() for ep in entry_points(group="gpiozero_pin_factories"))}))


def _pin_factory_problem(name: str) -> str | None:
    known = _pin_factories()
    if name and name.lower() not in known:
        return f"{show(name)} is not a gpiozero pin factory (known: {', '.join(known)}; empty = the default)"
    return None


def _second_stage_problem(name: str) -> str | None:
    if name == "silero":
        why = silero_missing()
        return None if why is None else f"silero: {why}"
    return None


class _Section:
    """Base of the section dataclasses: a section checks its fields when it is built."""

    def __post_init__(self):
        problems = check_section(self)
        if problems:
            raise ConfigError(problems, "settings")


@dataclass(frozen=True)
class StationSettings(_Section):
    id: str = _f(
        "station-1", pattern=TOPIC_LEVEL, pattern_doc=TOPIC_LEVEL_DOC, doc="station id, used in MQTT topics and events"
    )
    site: str = _f(
        "site-1", pattern=TOPIC_LEVEL, pattern_doc=TOPIC_LEVEL_DOC, doc="site name, the second level of the MQTT topic"
    )
    profile: str = _f(
        "hotline-5s",
        doc="service profile name (a shipped profile: `headset-station profiles`) or a path to a profile file",
    )
    state_dir: str = _f("var/state", doc="outbox and persisted seq")
    log_level: str = _f(
        "info", choices=("debug", "info", "warning", "error"), doc="least severe log messages written to the journal"
    )
    local_config: str = _f(
        "",
        doc="per-desk TOML merged over this file when it exists (calibrate writes there; "
        "provision never touches it); relative to this file's directory",
    )
    desk: str = _f(
        "",
        validate=_optional_name,
        doc="desk name for the board and reports (provisioned from the inventory); empty = none",
    )
    agent: str = _f(
        "",
        validate=_optional_name,
        doc="agent at this desk at start; `cmd/agent` changes it at run time (kept in state_dir)",
    )
    tz: str = _f(
        "",
        validate=_zone_problem,
        doc="the site's time zone, an IANA name such as Asia/Shanghai (reports, calling hours); empty = the Pi's local time",
    )


@dataclass(frozen=True)
class AudioSettings(_Section):
    backend: str = _f("pyaudio", choices=("pyaudio", "wav", "silence"), doc="audio source backend")
    device: str = _f("", doc="capture device name (substring match); empty = default device")
    rate_hz: int = _f(16000, choices=(8000, 16000, 32000, 48000), doc="capture sample rate")
    frame_ms: int = _f(30, choices=(10, 20, 30), doc="analysis frame length")
    buffer_ms: int = _f(30, lo=10, hi=1000, doc="capture block; cues switch within one block of their instant")
    channels: int = _f(2, choices=(1, 2), doc="2 = one stereo capture; 1 = mono (tx only)")
    tx_channel: int = _f(0, choices=(0, 1), doc="which capture channel is the agent's microphone")
    rx_channel: int = _f(1, choices=(0, 1), doc="which capture channel is the customer's line")
    tx_gain_db: float = _f(0.0, lo=-40.0, hi=40.0, doc="calibration gain applied to tx")
    rx_gain_db: float = _f(0.0, lo=-40.0, hi=40.0, doc="calibration gain applied to rx")
    wav_tx: str = _f("", doc="wav backend: agent channel file")
    wav_rx: str = _f("", doc="wav backend: customer channel file")
    stall_fault_s: float = _f(2.0, lo=0.1, hi=60.0, doc="no audio for this long raises an audio fault")
    reopen_s: float = _f(1.0, lo=0.1, hi=60.0, doc="wait between attempts to reopen a lost device")


@dataclass(frozen=True)
class AnalysisSettings(_Section):
    vad_aggressiveness: int = _f(2, lo=0, hi=3, doc="webrtcvad mode 0 (least) .. 3 (most aggressive)")
    onset_ms: int = _f(90, lo=0, hi=1000, doc="speech must last this long before an utterance starts")
    hangover_ms: int = _f(300, lo=0, hi=2000, doc="silence must last this long before an utterance ends")
    tone_plan: str = _f("cn", choices=("cn", "na", "etsi"), doc="call-progress tone plan for far-end hang-up")
    noise_window_s: float = _f(3.0, lo=0.5, hi=30.0, doc="window of the adaptive noise-floor estimate")
    condition_hold_s: float = _f(1.0, lo=0.0, hi=10.0, doc="a line condition must persist this long to change")
    hysteresis_db: float = _f(3.0, lo=0.0, hi=20.0, doc="level hysteresis around the low/noisy thresholds")
    echo: str = _f(
        "auto",
        choices=("auto", "off"),
        doc="auto = the agent's own voice on rx (sidetone, line echo) is not customer speech; off = no echo analysis",
    )
    second_stage: str = _f(
        "off",
        choices=("off", "silero"),
        validate=_second_stage_problem,
        doc="silero = fuse Silero VAD (the [silero] extra, ONNX on onnxruntime) into the speech decision; off = none",
    )


@dataclass(frozen=True)
class GpioSettings(_Section):
    pin_factory: str = _f(
        "",
        validate=_pin_factory_problem,
        doc="gpiozero pin factory (lgpio, rpigpio, mock); empty = GPIOZERO_PIN_FACTORY or gpiozero's default",
    )
    hook_pin: int = _f(17, lo=0, hi=27, doc="BCM pin of the hook switch")
    hook_pull_up: bool = _f(True, doc="internal pull-up on the hook pin (switch to ground)")
    hook_off_when_pressed: bool = _f(True, doc="switch closed = handset lifted")
    mute_pin: int = _f(27, lo=0, hi=27, doc="BCM pin of the mute (hold) key")
    mute_pull_up: bool = _f(True, doc="internal pull-up on the mute pin (key to ground)")
    mute_toggle: bool = _f(True, doc="each press toggles hold; false = held down while on hold")
    ring_pin: int = _f(-1, lo=-1, hi=27, doc="BCM pin of ring detect; -1 = none")
    ring_pull_up: bool = _f(True, doc="internal pull-up on the ring detect pin")
    bounce_s: float = _f(0.05, lo=0.0, hi=1.0, doc="debounce of every input")


@dataclass(frozen=True)
class LedSettings(_Section):
    kind: str = _f("tower", choices=("tower", "rgb", "none"), doc="green/amber/red tower, one RGB LED, or no LEDs")
    green_pin: int = _f(5, lo=0, hi=27, doc="BCM pin of the tower's green LED")
    amber_pin: int = _f(6, lo=0, hi=27, doc="BCM pin of the tower's amber LED")
    red_pin: int = _f(13, lo=0, hi=27, doc="BCM pin of the tower's red LED")
    rgb_pins: list[int] = _f(
        [16, 20, 21], items=BCM_PIN, validate=_three_pins, doc="red, green, blue BCM pins of the RGB LED"
    )
    active_high: bool = _f(True, doc="an LED lights when its pin is high (false: when low)")
    cues: dict[str, dict] = _f({}, doc="overrides of the cue table: cue = {leds=..., pattern=..., priority=...}")


@dataclass(frozen=True)
class MqttSettings(_Section):
    brokers: list[str] = _f(
        [],
        validate=_brokers_problem,
        doc="broker URLs tried in order (mqtt://host:port, mqtts://host:port); empty = no publishing",
    )
    client_id: str = _f("", doc="empty = hs-<site>-<station>")
    keepalive_s: int = _f(30, lo=5, hi=3600, doc="MQTT keepalive; the broker sends the Last Will after 1.5x this")
    reconnect_max_s: int = _f(
        60, lo=1, hi=3600, doc="longest wait between reconnect attempts (the wait doubles from 1 s)"
    )
    username: str = _f("", doc="MQTT user name; empty = the station id when a password file is set")
    password_file: str = _f("", doc="file holding the password; must be readable only by the service user")
    ca_file: str = _f("", doc="CA bundle for mqtts://; empty = system CAs")
    cert_file: str = _f("", doc="client certificate (optional)")
    key_file: str = _f("", doc="client key (optional)")
    tls_insecure: bool = _f(False, doc="skip hostname verification (never in production)")
    telemetry_s: float = _f(10.0, lo=1.0, hi=3600.0, doc="how often telemetry is published")
    drain_per_s: int = _f(2000, lo=1, hi=100000, doc="backlog drain rate after an outage")
    inflight: int = _f(100, lo=1, hi=65535, doc="QoS 1 messages in flight at once")
    outbox_max_mb: float = _f(64.0, lo=1.0, hi=10240.0, doc="outbox size cap; telemetry is dropped first, never events")


@dataclass(frozen=True)
class Settings:
    station: StationSettings = field(default_factory=StationSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    gpio: GpioSettings = field(default_factory=GpioSettings)
    leds: LedSettings = field(default_factory=LedSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    profile: dict[str, float] = field(
        default_factory=dict
    )  # overrides of profile keys, checked by firmware.config.profiles
    source: str = "defaults"

    def __post_init__(self):
        problems = cross_check(self)
        if problems:
            raise ConfigError(problems, self.source)

    def replace(self, **sections) -> "Settings":
        """A checked copy with some fields of some sections changed: replace(mqtt={'brokers': [...]}).

        ConfigError if the copy would not be a valid config (same checks as the config file).
        """
        changes: dict[str, Any] = {}
        for name, values in sections.items():
            if name == "profile":
                changes[name] = {**self.profile, **values}
            else:
                changes[name] = dataclasses.replace(getattr(self, name), **values)
        return dataclasses.replace(self, **changes)


SECTIONS = {
    "station": StationSettings,
    "audio": AudioSettings,
    "analysis": AnalysisSettings,
    "gpio": GpioSettings,
    "leds": LedSettings,
    "mqtt": MqttSettings,
}
_PREFIX = {cls: name for name, cls in SECTIONS.items()}


def check_field(where: str, value, f: dataclasses.Field) -> tuple[object, list[str]]:
    """Check one value for a section field: its real type and the field's Check."""
    return check_value(where, value, f.type, f.metadata["check"])


def check_section(section) -> list[str]:
    """Problems with the fields of a built section (used when a section is constructed)."""
    prefix = _PREFIX[type(section)]
    problems = []
    for f in dataclasses.fields(section):
        problems += check_field(f"{prefix}.{f.name}", getattr(section, f.name), f)[1]
    return problems


def build_section(cls, table: dict, prefix: str, problems: list[str]):
    """Build one section dataclass from a TOML table, appending every problem found."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        if key not in fields:
            problems.append(f"{prefix}.{key}: unknown key (known: {', '.join(fields)})")
            continue
        checked, errs = check_field(f"{prefix}.{key}", value, fields[key])
        problems += errs
        if not errs:
            values[key] = checked
    return cls(**values)


def settings_from_dict(data: dict, source: str = "config") -> Settings:
    """Validate a parsed config table; raise ConfigError listing every problem."""
    problems: list[str] = []
    sections = {}
    profile = data.get("profile", {})
    for name, table in data.items():
        if name == "profile":
            if not isinstance(table, dict):
                problems.append(f"profile: expected a table of profile keys, got {type(table).__name__} {show(table)}")
                profile = {}
            continue
        if name not in SECTIONS:
            problems.append(f"{name}: unknown section (known: {', '.join([*SECTIONS, 'profile'])})")
            continue
        if not isinstance(table, dict):
            problems.append(f"{name}: expected a table, got {type(table).__name__} {show(table)}")
            continue
        sections[name] = build_section(SECTIONS[name], table, name, problems)
    try:
        settings = Settings(**sections, profile=dict(profile), source=source)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems, source)
    return settings


def _pins(s: Settings) -> list[tuple[str, int]]:
    """(key, BCM pin) of every pin the station drives or reads with these settings."""
    pins = [("gpio.hook_pin", s.gpio.hook_pin), ("gpio.mute_pin", s.gpio.mute_pin)]
    if s.gpio.ring_pin >= 0:
        pins.append(("gpio.ring_pin", s.gpio.ring_pin))
    if s.leds.kind == "tower":
        pins += [
            ("leds.green_pin", s.leds.green_pin),
            ("leds.amber_pin", s.leds.amber_pin),
            ("leds.red_pin", s.leds.red_pin),
        ]
    elif s.leds.kind == "rgb":
        pins += [(f"leds.rgb_pins[{i}]", p) for i, p in enumerate(s.leds.rgb_pins)]
    return pins


def cross_check(s: Settings) -> list[str]:
    """Contradictions between keys that each look fine alone (and the [profile] / [leds.cues] tables)."""
    problems = []
    if s.audio.channels == 2 and s.audio.tx_channel == s.audio.rx_channel:
        problems.append("audio.rx_channel: must differ from audio.tx_channel on a stereo capture")
    if s.audio.backend == "wav" and not (s.audio.wav_tx or s.audio.wav_rx):
        problems.append("audio.wav_tx: the wav backend needs audio.wav_tx or audio.wav_rx")
    seen: dict[int, str] = {}
    for key, pin in _pins(s):
        if pin in seen:
            problems.append(f"{key}: GPIO{pin} is already {seen[pin]}; every input and LED needs its own pin")
        else:
            seen[pin] = key
    problems += check_cue_overrides(s.leds.cues, s.leds.kind)
    # Profile keys are checked against the profile schema here so check-config sees them all.
    if isinstance(s.profile, dict):
        problems += check_overrides(s.profile)
    else:
        problems.append(f"profile: expected a table of profile keys, got {type(s.profile).__name__}")
    return problems


# Keys naming files: a relative path *in a config file* is relative to that file's directory,
# for check-config, run, replay and selftest alike (the service runs in its own working
# directory). Defaults and command-line options stay relative to the working directory.
PATH_KEYS = {
    "station": ("state_dir", "profile"),
    "audio": ("wav_tx", "wav_rx"),
    "mqtt": ("password_file", "ca_file", "cert_file", "key_file"),
}


def _anchor_paths(data: dict, base_dir: Path) -> dict:
    """`data` with the relative paths of PATH_KEYS joined to `base_dir` (a profile only when it
    is a file, `*.toml`, not a shipped name); values of the wrong type are left to validation."""
    out = dict(data)
    for section, keys in PATH_KEYS.items():
        table = out.get(section)
        if not isinstance(table, dict):
            continue
        table = out[section] = dict(table)
        for key in keys:
            value = table.get(key)
            if not isinstance(value, str) or not value or os.path.isabs(value):
                continue
            if key == "profile" and not value.endswith(".toml"):
                continue
            table[key] = str(base_dir / value)
    return out


def load_settings(path: str | Path | None = None) -> Settings:
    """Load and validate a config file; None = the built-in defaults."""
    if path is None:
        return settings_from_dict({}, "defaults")
    try:
        data = read_toml(path)
    except TomlFileError as exc:
        raise ConfigError(exc.reason, path) from None
    return _with_local_config(Path(path), _anchor_paths(data, Path(path).absolute().parent))


def local_config_path(path: str | Path, name) -> Path | None:
    """The local config `name` (station.local_config) of the config file at `path`, if named."""
    if not isinstance(name, str) or not name:
        return None
    return Path(path).parent / name  # an absolute name stays absolute


def _merge(base: dict, over: dict) -> dict:
    """`over`'s keys over `base`'s, table by table."""
    merged = dict(base)
    for key, value in over.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def _with_local_config(path: Path, data: dict) -> Settings:
    """Settings of config `data` (read from `path`) with its station.local_config merged over
    it when that file exists: per-desk values a re-provisioned station.toml must not erase."""
    station = data.get("station")
    local = local_config_path(path, station.get("local_config") if isinstance(station, dict) else None)
    if local is None or not local.exists():
        return settings_from_dict(data, str(path))
    try:
        extra = read_toml(local)
    except TomlFileError as exc:
        raise ConfigError(exc.reason, local) from None
    if isinstance(extra.get("station"), dict) and "local_config" in extra["station"]:
        raise ConfigError("station.local_config: not allowed in the local config itself", local)
    extra = _anchor_paths(extra, local.absolute().parent)
    return settings_from_dict(_merge(data, extra), f"{path} + {local}")


def describe_defaults() -> str:
    """The default config as commented TOML, for `check-config --defaults` and the docs."""
    lines = []
    for name, cls in SECTIONS.items():
        lines.append(f"[{name}]")
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            doc = f.metadata.get("doc", "")
            limits = f.metadata["check"].describe()
            doc = f"{doc} ({limits})" if doc and limits else doc or limits
            val = repr(default).replace("'", '"') if not isinstance(default, bool) else str(default).lower()
            lines.append(f"{f.name} = {val}" + (f"  # {doc}" if doc else ""))
        lines.append("")
    return "\n".join(lines)
