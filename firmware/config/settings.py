"""Typed, validated station settings, loaded from TOML.

Each section of the config file is a frozen dataclass; a field's metadata carries its
range or choices. `load_settings` checks every key and reports *all* problems at once,
each naming the key and the reason, so `check-config` can list them for a technician.
Profile keys (`[profile]`) are validated by `firmware.profiles`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from firmware.config.leds import check_cue_overrides
from firmware.config.profiles import check_overrides
from firmware.errors import ConfigError
from firmware.protocol.brokers import parse_broker


def _f(default, *, lo=None, hi=None, choices=None, doc=""):
    meta = {"lo": lo, "hi": hi, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class StationSettings:
    id: str = _f("station-1", doc="station id, used in MQTT topics and events")
    site: str = _f("site-1", doc="site name, the second level of the MQTT topic")
    profile: str = _f("hotline-5s", doc="service profile name (a shipped profile: `headset-station profiles`) or a path to a profile file")
    state_dir: str = _f("var/state", doc="outbox and persisted seq; relative to the working directory")
    log_level: str = _f("info", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class AudioSettings:
    backend: str = _f("pyaudio", choices=("pyaudio", "wav", "silence"), doc="audio source backend")
    device: str = _f("", doc="capture device name (substring match); empty = default device")
    rate_hz: int = _f(16000, choices=(8000, 16000, 32000, 48000))
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
class AnalysisSettings:
    vad_aggressiveness: int = _f(2, lo=0, hi=3, doc="webrtcvad mode 0 (least) .. 3 (most aggressive)")
    onset_ms: int = _f(90, lo=0, hi=1000, doc="speech must last this long before an utterance starts")
    hangover_ms: int = _f(300, lo=0, hi=2000, doc="silence must last this long before an utterance ends")
    tone_plan: str = _f("cn", choices=("cn", "na", "etsi"), doc="call-progress tone plan for far-end hang-up")
    noise_window_s: float = _f(3.0, lo=0.5, hi=30.0, doc="window of the adaptive noise-floor estimate")
    condition_hold_s: float = _f(1.0, lo=0.0, hi=10.0, doc="a line condition must persist this long to change")
    hysteresis_db: float = _f(3.0, lo=0.0, hi=20.0, doc="level hysteresis around the low/noisy thresholds")
    echo: str = _f("auto", choices=("auto", "off"), doc="auto = the agent's own voice on rx (sidetone, line echo) is not customer speech; off = no echo analysis")


@dataclass(frozen=True)
class GpioSettings:
    pin_factory: str = _f("", doc="gpiozero pin factory (lgpio, rpigpio, mock); empty = GPIOZERO_PIN_FACTORY or gpiozero's default")
    hook_pin: int = _f(17, lo=0, hi=27, doc="BCM pin of the hook switch")
    hook_pull_up: bool = _f(True)
    hook_off_when_pressed: bool = _f(True, doc="switch closed = handset lifted")
    mute_pin: int = _f(27, lo=0, hi=27, doc="BCM pin of the mute (hold) key")
    mute_pull_up: bool = _f(True)
    mute_toggle: bool = _f(True, doc="each press toggles hold; false = held down while on hold")
    ring_pin: int = _f(-1, lo=-1, hi=27, doc="BCM pin of ring detect; -1 = none")
    ring_pull_up: bool = _f(True)
    bounce_s: float = _f(0.05, lo=0.0, hi=1.0, doc="debounce of every input")


@dataclass(frozen=True)
class LedSettings:
    kind: str = _f("tower", choices=("tower", "rgb", "none"))
    green_pin: int = _f(5, lo=0, hi=27)
    amber_pin: int = _f(6, lo=0, hi=27)
    red_pin: int = _f(13, lo=0, hi=27)
    rgb_pins: list = _f([16, 20, 21], doc="red, green, blue BCM pins of the RGB LED")
    active_high: bool = _f(True)
    cues: dict = _f({}, doc="overrides of the cue table: cue = {leds=..., pattern=..., priority=...}")


@dataclass(frozen=True)
class MqttSettings:
    brokers: list = _f([], doc="broker URLs tried in order (mqtt://host:port, mqtts://host:port); empty = no publishing")
    client_id: str = _f("", doc="empty = hs-<site>-<station>")
    keepalive_s: int = _f(30, lo=5, hi=3600)
    reconnect_max_s: int = _f(60, lo=1, hi=3600, doc="longest wait between reconnect attempts (the wait doubles from 1 s)")
    username: str = _f("")
    password_file: str = _f("", doc="file holding the password; must be readable only by the service user")
    ca_file: str = _f("", doc="CA bundle for mqtts://; empty = system CAs")
    cert_file: str = _f("", doc="client certificate (optional)")
    key_file: str = _f("", doc="client key (optional)")
    tls_insecure: bool = _f(False, doc="skip hostname verification (never in production)")
    telemetry_s: float = _f(10.0, lo=1.0, hi=3600.0)
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
    profile: dict = field(default_factory=dict)  # overrides of profile keys, checked by firmware.profiles
    source: str = "defaults"

    def replace(self, **sections) -> "Settings":
        """A copy with some fields of some sections changed: replace(mqtt={'brokers': [...]})."""
        changes = {}
        for name, values in sections.items():
            if name == "profile":
                changes[name] = {**self.profile, **values}
            else:
                changes[name] = dataclasses.replace(getattr(self, name), **values)
        return dataclasses.replace(self, **changes)


SECTIONS = {
    "station": StationSettings, "audio": AudioSettings, "analysis": AnalysisSettings,
    "gpio": GpioSettings, "leds": LedSettings, "mqtt": MqttSettings,
}
# Field annotations are strings (postponed evaluation); TOML gives these Python types.
_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "list": list, "dict": dict}


def _check_value(key: str, value, f: dataclasses.Field, problems: list[str]):
    typ = _TYPES[f.type]
    # bool is an int subclass, so `true` must not pass for a number (nor 1 for a bool).
    if not isinstance(value, typ) or (isinstance(value, bool) and f.type != "bool"):
        problems.append(f"{key}: expected {f.type}, got {type(value).__name__} {value!r}")
        return None
    if f.type == "float":
        value = float(value)
    m = f.metadata
    if m.get("choices") is not None and value not in m["choices"]:
        problems.append(f"{key}: {value!r} is not one of {', '.join(map(str, m['choices']))}")
        return None
    if m.get("lo") is not None and value < m["lo"]:
        problems.append(f"{key}: {value!r} is below the minimum {m['lo']}")
        return None
    if m.get("hi") is not None and value > m["hi"]:
        problems.append(f"{key}: {value!r} is above the maximum {m['hi']}")
        return None
    return value


def build_section(cls, table: dict, prefix: str, problems: list[str]):
    """Build one section dataclass from a TOML table, appending every problem found."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        if key not in fields:
            problems.append(f"{prefix}.{key}: unknown key (known: {', '.join(fields)})")
            continue
        checked = _check_value(f"{prefix}.{key}", value, fields[key], problems)
        if checked is not None:
            values[key] = checked
    return cls(**values)


def settings_from_dict(data: dict, source: str = "config") -> Settings:
    """Validate a parsed config table; raise ConfigError listing every problem."""
    problems: list[str] = []
    sections = {}
    for name, table in data.items():
        if name == "profile":
            if not isinstance(table, dict):
                problems.append("profile: expected a table of profile keys")
            continue
        if name not in SECTIONS:
            problems.append(f"{name}: unknown section (known: {', '.join([*SECTIONS, 'profile'])})")
            continue
        if not isinstance(table, dict):
            problems.append(f"{name}: expected a table, got {type(table).__name__}")
            continue
        sections[name] = build_section(SECTIONS[name], table, name, problems)
    settings = Settings(**sections, profile=dict(data.get("profile") or {}), source=source)
    problems += cross_check(settings)
    # Profile keys are checked against the profile schema here so check-config sees them all.
    problems += check_overrides(settings.profile)
    if problems:
        raise ConfigError(problems, source)
    return settings


def cross_check(s: Settings) -> list[str]:
    """Contradictions between keys that each look fine alone."""
    problems = []
    if s.audio.channels == 2 and s.audio.tx_channel == s.audio.rx_channel:
        problems.append("audio.rx_channel: must differ from audio.tx_channel on a stereo capture")
    if s.audio.backend == "wav" and not (s.audio.wav_tx or s.audio.wav_rx):
        problems.append("audio.wav_tx: the wav backend needs audio.wav_tx or audio.wav_rx")
    if len(s.leds.rgb_pins) != 3 or not all(isinstance(p, int) and 0 <= p <= 27 for p in s.leds.rgb_pins):
        problems.append(f"leds.rgb_pins: expected three BCM pins 0-27, got {s.leds.rgb_pins!r}")
    problems += check_cue_overrides(s.leds.cues, s.leds.kind)
    for url in s.mqtt.brokers:
        try:
            parse_broker(url if isinstance(url, str) else repr(url))
        except ConfigError as exc:
            problems.append(str(exc).removeprefix("config: "))
    return problems


def load_settings(path: str | Path | None = None) -> Settings:
    """Load and validate a config file; None = the built-in defaults."""
    if path is None:
        return settings_from_dict({}, "defaults")
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("file not found", path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path) from None
    return settings_from_dict(data, str(path))


def describe_defaults() -> str:
    """The default config as commented TOML, for `check-config --defaults` and the docs."""
    lines = []
    for name, cls in SECTIONS.items():
        lines.append(f"[{name}]")
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            doc = f.metadata.get("doc", "")
            val = repr(default).replace("'", '"') if not isinstance(default, bool) else str(default).lower()
            lines.append(f"{f.name} = {val}" + (f"  # {doc}" if doc else ""))
        lines.append("")
    return "\n".join(lines)


