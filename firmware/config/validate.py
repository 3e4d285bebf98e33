"""One place that checks every value a user or the network can set.

A `Check` says what a value must be besides its type: a range, a set of choices, a string
pattern (an MQTT topic level, say), the check of each item of a list, an exact list
length, or a custom validator. `check_value(where, value, typ, rule)` checks a value
against a real type (`int`, `float`, `str`, `bool`, `list[int]`, `dict[str, dict]`) and a
rule and returns the value (an integer given for a `float` becomes a float) and the list of
problems, each one line starting with `where`.

Used by the settings sections (firmware.config.settings), the profile timing keys
(firmware.config.profiles), so by `check-config`, the service start, the persisted
`overrides.json` and the `cmd/set-config` command alike, and by the CLI's number options
(`number_arg`).

Numbers must be finite: NaN passes every `<` and `>` comparison, so a range alone never
refuses it; NaN and infinity are refused here, before any range is looked at.
"""

from __future__ import annotations

import argparse
import math
import re
import reprlib
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxdict = 6


def show(value: Any) -> str:
    """A short, safe repr for a message: never huge, never a RecursionError or a digit-limit error."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"{'-' if value < 0 else ''}<a {value.bit_length()}-bit integer>"
    try:
        return _REPR.repr(value)
    except (RecursionError, ValueError):
        return f"<{type(value).__name__}>"


# A site or station id is one MQTT topic level: the topic is hs/<site>/<station>/...
TOPIC_LEVEL = r"[^/+#\x00]+"
TOPIC_LEVEL_DOC = "must be one MQTT topic level: non-empty, without '/', '+', '#'"


@dataclass(frozen=True)
class Check:
    """What a value must be, beyond its type."""

    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None
    pattern: str | None = None  # a str must match this regex in full
    pattern_doc: str = ""  # what the pattern means, for the message
    items: Check | None = None  # the check of each item of a list
    length: int | None = None  # exact length of a list
    validate: Callable[[Any], str | None] | None = None  # extra check; returns a problem or None

    def describe(self) -> str:
        """The range or choices in words, for docs: '0.5..60', 'one of 8000, 16000'."""
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.lo is not None and self.hi is not None:
            return f"{self.lo:g}..{self.hi:g}"
        if self.lo is not None:
            return f">= {self.lo:g}"
        if self.hi is not None:
            return f"<= {self.hi:g}"
        return self.pattern_doc


NO_CHECK = Check()


def type_name(typ) -> str:
    """'int', 'float', 'list', ... as in the messages check-config has always printed."""
    origin = typing.get_origin(typ) or typ
    return getattr(origin, "__name__", str(origin))


def check_value(where: str, value: Any, typ, rule: Check = NO_CHECK) -> tuple[Any, list[str]]:
    """(the value, converted; []) or (None, [one-line problems naming `where`])."""
    origin = typing.get_origin(typ) or typ
    args = typing.get_args(typ)
    got = f"got {type(value).__name__} {show(value)}"
    if origin is float:
        # bool is an int subclass: `true` is not a number (nor 1 a bool).
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, [f"{where}: expected a number, {got}"]
        try:
            value = float(value)
        except OverflowError:
            return None, [f"{where}: {show(value)} is too large"]
        if not math.isfinite(value):
            return None, [f"{where}: {value!r} is not a finite number"]
    elif origin is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return None, [f"{where}: expected int, {got}"]
    elif origin in (str, bool, dict):
        if not isinstance(value, origin):
            return None, [f"{where}: expected {type_name(origin)}, {got}"]
        if origin is dict and not all(isinstance(k, str) for k in value):
            return None, [f"{where}: table keys must be strings"]
    elif origin is list:
        if not isinstance(value, list):
            return None, [f"{where}: expected {type_name(typ)}, {got}"]
        if rule.length is not None and len(value) != rule.length:
            return None, [f"{where}: expected {rule.length} items, got {len(value)}: {show(value)}"]
        item_type = args[0] if args else object
        items, problems = [], []
        for i, item in enumerate(value):
            checked, errs = (
                check_value(f"{where}[{i}]", item, item_type, rule.items or NO_CHECK)
                if item_type is not object
                else (item, [])
            )
            problems += errs
            items.append(checked)
        if problems:
            return None, problems
        value = items
    else:
        raise TypeError(f"{where}: no check for type {typ!r}")
    if rule.choices is not None and value not in rule.choices:
        return None, [f"{where}: {show(value)} is not one of {', '.join(map(str, rule.choices))}"]
    if (rule.lo is not None and value < rule.lo) or (rule.hi is not None and value > rule.hi):
        if rule.lo is not None and rule.hi is not None:
            return None, [f"{where}: {show(value)} is outside {rule.lo:g}..{rule.hi:g}"]
        limit = f"below the minimum {rule.lo:g}" if rule.hi is None else f"above the maximum {rule.hi:g}"
        return None, [f"{where}: {show(value)} is {limit}"]
    if rule.pattern is not None and not re.fullmatch(rule.pattern, value):
        return None, [f"{where}: {show(value)} {rule.pattern_doc or 'does not match ' + rule.pattern}"]
    if rule.validate is not None:
        problem = rule.validate(value)
        if problem:
            return None, [f"{where}: {problem}"]
    return value, []


def number_arg(typ=float, *, lo: float | None = None, hi: float | None = None):
    """An argparse `type=` for a number option: finite and in range, else a usage error (exit 2)."""

    def parse(text: str):
        try:
            value = typ(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a number" if typ is float else f"{text!r} is not an integer"
            ) from None
        _checked, problems = check_value("value", value, typ, Check(lo=lo, hi=hi))
        if problems:
            raise argparse.ArgumentTypeError(problems[0].removeprefix("value: "))
        return value

    parse.__name__ = typ.__name__  # argparse names the type in its own messages
    return parse
