"""LED cue configuration: the named cues, their default look on a green/amber/red tower and on
one RGB LED, their priorities, the LED pattern syntax, and the `[leds.cues]` overrides.

A cue spec maps each LED to a pattern: `off`, `steady`, `blink <rate>Hz` or `pulse <rate>Hz`
(an RGB LED's pattern is prefixed with a colour: `amber blink 2Hz`). The whole spec (every
LED, `off` included) is what a `cue` event's `leds` field carries. `[leds.cues]` in the
station config overrides entries; `check_cue_overrides` validates them for check-config.
`hal.leds` drives pins from these patterns; `firmware.station.cues.CueBoard` decides which
cue shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from firmware.config.validate import Check, check_value, show

TOWER_LEDS = ("green", "amber", "red")
RGB_COLOURS = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "amber": (1.0, 0.5, 0.0),
    "yellow": (1.0, 1.0, 0.0),
    "white": (1.0, 1.0, 1.0),
    "cyan": (0.0, 1.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
}

PRIORITY = Check(lo=0, hi=1000)
_PATTERN = re.compile(r"^(off|steady|on|(blink|pulse) (\d+(?:\.\d+)?)\s*hz)$", re.IGNORECASE)


def parse_pattern(text: object) -> tuple[str, float]:
    """'blink 2Hz' -> ('blink', 2.0); 'steady'/'on' -> ('steady', 0); 'off' -> ('off', 0)."""
    m = _PATTERN.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{show(text)} is not off, steady, 'blink <rate>Hz' or 'pulse <rate>Hz'")
    if m[2]:
        rate_hz = float(m[3])
        if not 0.1 <= rate_hz <= 20.0:
            raise ValueError(f"{show(text)}: rate must be 0.1-20 Hz")
        return m[2].lower(), rate_hz
    return ("off" if m[1].lower() == "off" else "steady"), 0.0


def parse_rgb(text: str) -> tuple[str, str, float]:
    """'amber blink 2Hz' -> ('amber', 'blink', 2.0); 'off' -> ('off', 'off', 0)."""
    if isinstance(text, str) and text.strip().lower() == "off":
        return "off", "off", 0.0
    colour, _, rest = text.strip().partition(" ") if isinstance(text, str) else ("", "", "")
    if colour.lower() not in RGB_COLOURS:
        raise ValueError(f"{show(text)}: colour must be one of {', '.join(RGB_COLOURS)}")
    kind, rate_hz = parse_pattern(rest or "steady")
    return colour.lower(), kind, rate_hz


@dataclass(frozen=True)
class CueSpec:
    leds: dict  # led name -> pattern text (every LED of the board)
    priority: int


def _tower(priority, green="off", amber="off", red="off"):
    return CueSpec({"green": green, "amber": amber, "red": red}, priority)


# Green = "go / talk", amber = "wait", red = "act now / wrong". Higher priority wins.
TOWER_TABLE = {
    "idle": _tower(0),
    "on_call": _tower(10, green="steady"),
    "wrap_up": _tower(30, green="steady", amber="blink 0.5Hz"),
    "outside_hours": _tower(35, red="steady"),
    "greet": _tower(40, green="blink 4Hz"),
    "hangup_ok": _tower(45, green="pulse 0.5Hz"),
    "pause": _tower(50, amber="steady"),
    "speak": _tower(51, green="blink 2Hz"),
    "say_wait": _tower(55, amber="blink 1Hz"),
    "say_busy": _tower(56, amber="blink 1Hz", red="blink 1Hz"),
    "hold": _tower(60, amber="pulse 0.5Hz"),
    "hold_warn": _tower(61, amber="blink 2Hz"),
    "hold_over": _tower(62, red="blink 2Hz"),
    "call_back": _tower(65, red="pulse 1Hz"),
    "thank_waiting": _tower(70, green="steady", amber="steady"),
    "apologize_wait": _tower(71, green="steady", red="steady"),
    "lower_voice": _tower(75, red="steady", amber="steady"),
    "overtalk": _tower(80, red="blink 4Hz"),
    "fault": _tower(100, green="blink 1Hz", amber="blink 1Hz", red="blink 1Hz"),
}

RGB_TABLE = {
    "idle": CueSpec({"rgb": "off"}, 0),
    "on_call": CueSpec({"rgb": "green"}, 10),
    "wrap_up": CueSpec({"rgb": "cyan blink 0.5Hz"}, 30),
    "outside_hours": CueSpec({"rgb": "magenta"}, 35),
    "greet": CueSpec({"rgb": "green blink 4Hz"}, 40),
    "hangup_ok": CueSpec({"rgb": "green pulse 0.5Hz"}, 45),
    "pause": CueSpec({"rgb": "amber"}, 50),
    "speak": CueSpec({"rgb": "green blink 2Hz"}, 51),
    "say_wait": CueSpec({"rgb": "amber blink 1Hz"}, 55),
    "say_busy": CueSpec({"rgb": "yellow blink 1Hz"}, 56),
    "hold": CueSpec({"rgb": "blue pulse 0.5Hz"}, 60),
    "hold_warn": CueSpec({"rgb": "blue blink 2Hz"}, 61),
    "hold_over": CueSpec({"rgb": "red blink 2Hz"}, 62),
    "call_back": CueSpec({"rgb": "red pulse 1Hz"}, 65),
    "thank_waiting": CueSpec({"rgb": "white"}, 70),
    "apologize_wait": CueSpec({"rgb": "yellow"}, 71),
    "lower_voice": CueSpec({"rgb": "magenta blink 2Hz"}, 75),
    "overtalk": CueSpec({"rgb": "red blink 4Hz"}, 80),
    "fault": CueSpec({"rgb": "white blink 1Hz"}, 100),
}

CUE_NAMES = tuple(TOWER_TABLE)


def _override_spec(name: str, entry, kind: str, base: CueSpec) -> tuple[CueSpec | None, list[str]]:
    where = f"leds.cues.{name}"
    if not isinstance(entry, dict):
        return None, [f"{where}: expected a table {{leds=..., pattern=..., priority=...}}"]
    problems = [
        f"{where}.{k}: unknown key (known: leds, pattern, priority)"
        for k in entry
        if k not in ("leds", "pattern", "priority")
    ]
    priority = entry.get("priority", base.priority)
    if check_value(f"{where}.priority", priority, int, PRIORITY)[1]:
        problems.append(f"{where}.priority: expected an integer 0-1000, got {show(priority)}")
    leds, pattern = entry.get("leds"), entry.get("pattern", "steady")
    out = dict.fromkeys(base.leds, "off")
    if kind == "rgb":
        text = pattern if leds is None else f"{leds} {pattern}" if pattern != "off" else "off"
        try:
            parse_rgb(text)
            out["rgb"] = text
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    else:
        if isinstance(leds, str):
            leds = [leds]
        if not isinstance(leds, (list, dict)):
            problems.append(f"{where}.leds: expected a list of {', '.join(TOWER_LEDS)} or a table led = pattern")
            leds = None
        table = leds if isinstance(leds, dict) else dict.fromkeys(leds or (), pattern)
        for led, pat in table.items():
            if led not in TOWER_LEDS:
                problems.append(f"{where}.leds: unknown LED {show(led)} (known: {', '.join(TOWER_LEDS)})")
                continue
            try:
                parse_pattern(pat)
            except ValueError as exc:
                problems.append(f"{where}.pattern: {exc}")
                continue
            assert isinstance(pat, str)  # parse_pattern accepts strings only
            out[led] = pat
    return (None if problems else CueSpec(out, priority)), problems


def check_cue_overrides(overrides: dict, kind: str = "tower") -> list[str]:
    """Problems with a `[leds.cues]` table (empty list = fine)."""
    return build_table(kind, overrides)[1]


def build_table(kind: str, overrides: dict | None = None) -> tuple[dict, list[str]]:
    """The cue table for a board kind ('tower', 'rgb'; 'none' describes a tower) with overrides."""
    base = RGB_TABLE if kind == "rgb" else TOWER_TABLE
    table, problems = dict(base), []
    if not isinstance(overrides, dict):
        return table, ["leds.cues: expected a table of cue = {leds=..., pattern=..., priority=...}"]
    for name, entry in overrides.items():
        if name not in base:
            problems.append(f"leds.cues.{name}: unknown cue (known: {', '.join(CUE_NAMES)})")
            continue
        spec, errs = _override_spec(name, entry, kind, base[name])
        problems += errs
        if spec is not None:
            table[name] = spec
    return table, problems
