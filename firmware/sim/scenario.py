"""Scenario files (the README's event contract): recorded audio per channel plus timed GPIO input edges.

`load_scenario` validates everything before anything runs and raises a `ScenarioError`
(or an `InputError`/`AudioFormatError` for the audio) whose one-line message names the
file and the problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import numpy as np

from firmware.config.tomlfile import TomlFileError, read_toml
from firmware.errors import InputError, ScenarioError
from firmware.sim.wav import read_wav, write_wav

TOP_KEYS = {"profile", "start", "audio", "inputs"}
AUDIO_KEYS = {"rx", "tx"}
INPUT_NAMES = {"ring": bool, "hook": str, "mute": bool}
MIN_START_YEAR, MAX_START_YEAR = 1970, 9000  # a scenario's `start`
MAX_SCENARIO_S = 24 * 3600.0  # a longer "call" is a typo, not a scenario


@dataclass
class Scenario:
    path: Path
    rate_hz: int
    tx: np.ndarray | None  # int16 mono, or None = digital silence
    rx: np.ndarray | None
    inputs: list = field(default_factory=list)  # [(t_s, name, value)] sorted by t
    profile: str | None = None
    start: datetime | None = None  # wall-clock instant of t = 0, for calendar rules
    audio_s: float = 0.0
    duration_s: float = 0.0  # the later of the end of the audio and the last input

    def block_iter(self, block_s: float):
        """Yield (t0, tx_block, rx_block, inputs_in_block) covering the whole scenario."""
        n_total = int(round(self.duration_s * self.rate_hz))
        n_block = max(1, int(round(block_s * self.rate_hz)))
        inputs, first = self.inputs, 0
        for start in range(0, max(n_total, 1), n_block):
            stop = min(start + n_block, n_total) if n_total else n_block
            t0, t1 = start / self.rate_hz, stop / self.rate_hz
            last = stop >= n_total  # the last block takes every input left, even at t == duration
            end = first
            while end < len(inputs) and (inputs[end][0] < t1 or last):
                end += 1
            yield t0, _slice(self.tx, start, stop), _slice(self.rx, start, stop), inputs[first:end]
            first = end


def _slice(samples, start, stop):
    if samples is None:
        return None
    out = samples[start:stop]
    if len(out) < stop - start:  # this channel ended earlier: pad with digital silence
        out = np.concatenate([out, np.zeros(stop - start - len(out), dtype=np.int16)])
    return out


def _fail(path, msg) -> NoReturn:
    raise ScenarioError(f"{path}: {msg}")


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        data = read_toml(path)  # refuses a FIFO, a huge file and TOML nested thousands deep
    except TomlFileError as exc:
        if exc.missing:
            raise InputError(f"{path}: scenario file not found") from None
        _fail(path, exc.reason)
    for key in data:
        if key not in TOP_KEYS:
            _fail(path, f"unknown key {key!r} (known: {', '.join(sorted(TOP_KEYS))})")
    profile = data.get("profile")
    if profile is not None and not isinstance(profile, str):
        _fail(path, "profile: expected a string")
    start = data.get("start")
    if start is not None:
        if isinstance(start, str):
            try:
                start = datetime.fromisoformat(start)
            except ValueError:
                _fail(path, f"start: {start!r} is not an ISO 8601 date-time")
        if not isinstance(start, datetime) or start.tzinfo is None:
            _fail(path, "start: expected a date-time with a UTC offset, e.g. 2026-11-23T09:00:00+08:00")
        if not MIN_START_YEAR <= start.year <= MAX_START_YEAR:  # event times must stay representable
            _fail(path, f"start: year {start.year} is outside {MIN_START_YEAR}-{MAX_START_YEAR}")
    audio = data.get("audio", {})
    if not isinstance(audio, dict):
        _fail(path, "audio: expected a table")
    for key in audio:
        if key not in AUDIO_KEYS:
            _fail(path, f"audio.{key}: unknown channel (known: rx, tx)")
    channels, rate_hz = {}, None
    for ch in ("tx", "rx"):
        if ch not in audio:
            continue
        if not isinstance(audio[ch], str) or not audio[ch].strip():
            _fail(path, f"audio.{ch}: expected a file name")
        wav_path = path.parent / audio[ch]
        rate, samples = read_wav(wav_path)
        if rate_hz is not None and rate != rate_hz:
            _fail(path, f"audio: tx and rx have different rates ({rate_hz} and {rate} Hz)")
        rate_hz = rate
        channels[ch] = samples
    inputs = _parse_inputs(path, data.get("inputs", []))
    audio_s = max((len(s) for s in channels.values()), default=0) / (rate_hz or 16000)
    duration_s = max([audio_s] + [t for t, _, _ in inputs])
    return Scenario(
        path=path,
        rate_hz=rate_hz or 16000,
        tx=channels.get("tx"),
        rx=channels.get("rx"),
        inputs=inputs,
        profile=profile,
        start=start,
        audio_s=audio_s,
        duration_s=duration_s,
    )


def _parse_inputs(path, raw) -> list:
    if not isinstance(raw, list):
        _fail(path, "inputs: expected an array of tables [[inputs]]")
    out = []
    for i, item in enumerate(raw):
        where = f"inputs[{i}]"
        if not isinstance(item, dict):
            _fail(path, f"{where}: expected a table")
        if "t" not in item:
            _fail(path, f"{where}: missing t (seconds from start)")
        t = item["t"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            _fail(path, f"{where}.t: expected a number of seconds, got {t!r}")
        if t < 0:
            _fail(path, f"{where}.t: negative time {t}")
        if t > MAX_SCENARIO_S:
            _fail(path, f"{where}.t: {t} s is beyond the 24-hour limit of a scenario")
        names = [k for k in item if k != "t"]
        for k in names:
            if k not in INPUT_NAMES:
                _fail(path, f"{where}.{k}: unknown input (known: hook, mute, ring)")
        if len(names) != 1:
            _fail(path, f"{where}: expected exactly one of hook, mute, ring")
        name = names[0]
        value = item[name]
        if name == "hook":
            if value not in ("on", "off"):
                _fail(path, f'{where}.hook: {value!r} is not "on" or "off"')
        elif not isinstance(value, bool):
            _fail(path, f"{where}.{name}: expected true or false, got {value!r}")
        out.append((float(t), name, value))
    out.sort(key=lambda x: x[0])  # stable: same-time edges keep file order
    return out


def write_scenario(
    path: str | Path, rate_hz: int, tx=None, rx=None, inputs=(), profile: str | None = None, comment: str = ""
) -> Path:
    """Write a scenario file and its WAVs (`<stem>-tx.wav`, `<stem>-rx.wav` beside it) that
    `load_scenario` reads back. `tx`/`rx` are int16 sample arrays (or float in int16 units);
    None leaves the channel out (digital silence). The TOML is replaced atomically, so a
    half-written scenario is never picked up."""
    path = Path(path)
    lines = [f"# {comment}"] if comment else []
    if profile:
        lines.append(f'profile = "{profile}"')
    lines.append("[audio]")
    for ch, samples in (("tx", tx), ("rx", rx)):
        if samples is not None:
            wav = path.with_name(f"{path.stem}-{ch}.wav")
            samples = np.asarray(samples)
            if samples.dtype.kind == "f":  # int16 units, rounded and clipped
                samples = np.clip(np.round(samples), -32768, 32767).astype(np.int16)
            write_wav(wav, rate_hz, samples)
            lines.append(f'{ch} = "{wav.name}"')
    for t, name, value in inputs:
        v = f'"{value}"' if isinstance(value, str) else str(value).lower()
        lines += ["[[inputs]]", f"t = {t}", f"{name} = {v}"]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
