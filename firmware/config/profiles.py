"""Service profiles: the timings and scripted prompts of one call-centre standard.

A profile is a TOML file shipped in `firmware/config/profiles/` (package data) (or any path) that cites the standard it
comes from. Keys not in the file take the defaults of the README's profile table; a station's
`[profile]` table overrides any timing key.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from firmware.config.tomlfile import TomlFileError, parse_toml, read_toml
from firmware.config.validate import Check, check_value, show
from firmware.errors import ConfigError

# The shipped profiles are package data (firmware/config/profiles/*.toml), so a wheel install finds them.
SHIPPED = importlib.resources.files("firmware.config") / "profiles"
SCRIPTS = ("silent-call", "low-volume", "noisy-line")


@dataclass(frozen=True)
class Prompt:
    zh: str
    en: str

    def as_dict(self) -> dict:
        return {"zh": self.zh, "en": self.en}


class Timing(NamedTuple):
    """One timing key: its default (None = derived, see `_resolve`), range and meaning."""

    default: float | int | None
    lo: float
    hi: float
    doc: str

    @property
    def type(self) -> type:
        return int if isinstance(self.default, int) else float

    @property
    def check(self) -> Check:
        return Check(lo=self.lo, hi=self.hi)


# key: (default, lo, hi, doc). None default = "the profile does not enforce this".
TIMING_KEYS: dict[str, Timing] = {
    k: Timing(*v)
    for k, v in {
        "pause_s": (5.0, 0.5, 60.0, "pause between scripted steps, counted from the end of the agent's speech"),
        "greet_s": (2.0, 0.0, 30.0, "greeting due this long after answering; 0 = not checked"),
        "hold_warn_s": (45.0, 1.0, 3600.0, "hold warning"),
        "hold_limit_s": (60.0, 1.0, 3600.0, "hold limit"),
        "dead_air_s": (5.0, 0.5, 600.0, "announce the wait"),
        "dead_air_busy_s": (10.0, 0.5, 600.0, "announce a system delay"),
        "hangup_pause_s": (None, 0.0, 60.0, "minimum pause between the last word and hanging up; default pause_s"),
        "max_rings": (3, 0, 50, "rings allowed before an apology is due"),
        "low_dbfs": (-40.0, -90.0, 0.0, "customer speech below this active level is too low"),
        "noise_dbfs": (-45.0, -90.0, 0.0, "a noise floor above this makes the line noisy"),
        "snr_db": (10.0, 0.0, 60.0, "speech less than this above the noise floor makes the line noisy"),
        "shout_db": (10.0, 1.0, 60.0, "agent speech this far above the agent's call baseline is loud"),
        "overtalk_min_s": (0.5, 0.0, 10.0, "customer speech this long before a cut-in counts"),
        "max_call_s": (0.0, 0.0, 86400.0, "wrap-up cue after this long; 0 = no limit"),
        "apologize_s": (5.0, 0.0, 60.0, "how long the apologize_wait cue shows after a late answer"),
    }.items()
}


@dataclass(frozen=True)
class Profile:
    name: str
    source: str
    direction: str  # "inbound" | "outbound"
    greeting: Prompt
    scripts: dict  # script name -> tuple[Prompt, ...]; the last step is the hang-up-allowed one
    calling_hours: tuple = ()  # ((start_min, end_min), ...) minutes since local midnight; empty = any time
    wait_customer_hangup: bool = False
    timings: dict = field(default_factory=dict)

    def __getattr__(self, key):
        # Timing keys read as attributes: profile.pause_s
        timings = self.__dict__.get("timings", {})
        if key in timings:
            return timings[key]
        raise AttributeError(key)

    def with_overrides(self, overrides: dict) -> Profile:
        """This profile with `[profile]` / set-config overrides; ConfigError if any is invalid,
        or if the result contradicts itself (hold_warn_s above hold_limit_s, dead_air_s above
        dead_air_busy_s)."""
        problems = check_overrides(overrides)
        if problems:
            raise ConfigError(problems, "profile overrides")
        timings = {**self.timings, **{k: _num(k, v) for k, v in overrides.items()}}
        timings = _resolve(timings)
        problems = check_timings(timings, "profile")
        if problems:
            raise ConfigError(problems, f"{self.name} with overrides")
        return dataclasses.replace(self, timings=timings)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "direction": self.direction,
            **self.timings,
            "scripts": {k: [p.as_dict() for p in v] for k, v in self.scripts.items()},
        }


def _num(key, value):
    return TIMING_KEYS[key].type(value)


def _resolve(timings: dict) -> dict:
    out = dict(timings)
    if out.get("hangup_pause_s") is None:
        out["hangup_pause_s"] = out["pause_s"]
    return out


def check_overrides(overrides: dict, prefix: str = "profile") -> list[str]:
    """Problems with a table of timing keys (a `[profile]` table, a profile's `[timings]`,
    set-config's `set`, overrides.json); empty list = fine. Numbers must be finite and in range."""
    if not isinstance(overrides, dict):
        return [f"{prefix}: expected a table of profile keys, got {type(overrides).__name__} {show(overrides)}"]
    problems = []
    for key, value in overrides.items():
        if key not in TIMING_KEYS:
            problems.append(
                f"{prefix}.{show(key) if not isinstance(key, str) else key[:64]}: unknown profile key "
                f"(known: {', '.join(TIMING_KEYS)})"
            )
            continue
        timing = TIMING_KEYS[key]
        problems += check_value(f"{prefix}.{key}", value, timing.type, timing.check)[1]
    return problems


def check_timings(timings: dict, prefix: str) -> list[str]:
    """Contradictions between timing keys that are each in range (on resolved timings)."""
    problems = []
    if timings["hold_warn_s"] > timings["hold_limit_s"]:
        problems.append(
            f"{prefix}.hold_warn_s: {timings['hold_warn_s']:g} s is above {prefix}.hold_limit_s "
            f"{timings['hold_limit_s']:g} s; the warning must come before the limit"
        )
    if timings["dead_air_s"] > timings["dead_air_busy_s"]:
        problems.append(
            f"{prefix}.dead_air_s: {timings['dead_air_s']:g} s is above {prefix}.dead_air_busy_s "
            f"{timings['dead_air_busy_s']:g} s; 'please wait' must come before 'system busy'"
        )
    return problems


_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def _prompt(table, where: str, problems: list[str]) -> Prompt:
    if not isinstance(table, dict) or not isinstance(table.get("zh"), str) or not isinstance(table.get("en"), str):
        problems.append(f"{where}: expected a table with zh and en strings")
        return Prompt("", "")
    return Prompt(table["zh"], table["en"])


def profile_from_dict(data: dict, source: str) -> Profile:
    problems: list[str] = []
    known = {"name", "source", "direction", "greeting", "scripts", "calling_hours", "wait_customer_hangup", "timings"}
    for key in data:
        if key not in known:
            problems.append(f"{key}: unknown key (known: {', '.join(sorted(known))})")
    timings_in = data.get("timings", {})
    timing_problems = check_overrides(timings_in, "timings")
    problems += timing_problems
    timings = {k: v.default for k, v in TIMING_KEYS.items()}
    if not timing_problems:
        timings.update({k: _num(k, v) for k, v in timings_in.items()})
        problems += check_timings(_resolve(timings), "timings")
    for key in ("name", "source"):
        if key in data and not isinstance(data[key], str):
            problems.append(f"{key}: expected a string, got {type(data[key]).__name__} {show(data[key])}")
    if not isinstance(data.get("wait_customer_hangup", False), bool):
        problems.append(f"wait_customer_hangup: expected true or false, got {show(data['wait_customer_hangup'])}")
    direction = data.get("direction", "inbound")
    if direction not in ("inbound", "outbound"):
        problems.append(f"direction: {show(direction)} is not inbound or outbound")
    greeting = _prompt(data.get("greeting", {}), "greeting", problems)
    scripts = {}
    scripts_in = data.get("scripts") or {}
    if not isinstance(scripts_in, dict):
        problems.append(f"scripts: expected a table of script = [steps], got {show(scripts_in)}")
        scripts_in = {}
    for name, steps in scripts_in.items():
        if name not in SCRIPTS:
            problems.append(f"scripts.{name}: unknown script (known: {', '.join(SCRIPTS)})")
            continue
        if not isinstance(steps, list) or not steps:
            problems.append(f"scripts.{name}: expected a non-empty array of steps")
            continue
        scripts[name] = tuple(_prompt(s, f"scripts.{name}[{i}]", problems) for i, s in enumerate(steps))
    for name in SCRIPTS:
        if name not in scripts and not any(p.startswith(f"scripts.{name}") for p in problems):
            problems.append(f"scripts.{name}: missing")
    hours = []
    spans = data.get("calling_hours", [])
    if not isinstance(spans, list):
        problems.append(f'calling_hours: expected an array of "HH:MM-HH:MM", got {show(spans)}')
        spans = []
    for span in spans:
        m = _HOURS.match(span) if isinstance(span, str) else None
        if not m:
            problems.append(f"calling_hours: {show(span)} is not HH:MM-HH:MM")
            continue
        a, b = int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])
        if not (0 <= a < b <= 24 * 60):
            problems.append(f"calling_hours: {show(span)} does not run forward within one day")
            continue
        hours.append((a, b))
    if problems:
        raise ConfigError(problems, source)
    return Profile(
        name=str(data.get("name", Path(source).stem)),
        source=str(data.get("source", "")),
        direction=direction,
        greeting=greeting,
        scripts=scripts,
        calling_hours=tuple(hours),
        wait_customer_hangup=bool(data.get("wait_customer_hangup", False)),
        timings=_resolve(timings),
    )


def profile_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in SHIPPED.iterdir() if p.name.endswith(".toml"))


def load_profile(name_or_path: str, overrides: dict | None = None) -> Profile:
    """Load a shipped profile by name, or a profile file by path, and apply overrides."""
    path = Path(name_or_path)
    try:
        if path.suffix != ".toml":
            if name_or_path not in profile_names():
                raise ConfigError(
                    f"station.profile: unknown profile {show(name_or_path)} (shipped: {', '.join(profile_names())})"
                )
            shipped = SHIPPED / f"{name_or_path}.toml"
            path = Path(str(shipped))
            data = parse_toml(shipped.read_bytes())
        else:
            data = read_toml(path)
    except TomlFileError as exc:
        raise ConfigError(f"profile {exc.reason}", path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read profile: {exc.strerror}", path) from None
    profile = profile_from_dict(data, str(path))
    return profile.with_overrides(overrides) if overrides else profile
