"""`analyze`: what the analyser decides for a recording, for technicians and benchmarks.

The audio goes through the same `Pipeline` as `replay` and the live service (same
analysers, same block handling), with no call open, so no rule runs: the result is the
analysis edges of one channel, as speech segments (true start and end), line-condition
changes and far-end tones, plus the tx -> rx echo coupling when the agent's channel is
given and the pipeline estimates it.

The recording may be what a telephone system or recorder wrote (G.711, 24-bit or float,
44.1 kHz, both sides of the call in one stereo file): `firmware.sim.wav.read_recording`
reads it, and `--channels` says which of a file's channels is the customer (rx) and which
the agent (tx).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from firmware.analysis.edges import LineChange, SpeechEnd, SpeechStart, ToneDetected
from firmware.config.profiles import Profile
from firmware.config.settings import Settings
from firmware.errors import InputError
from firmware.runtime.replay import REPLAY_BLOCK_S
from firmware.sim.wav import read_recording, shown
from firmware.station.pipeline import Pipeline, echo_telemetry

CHANNELS = ("rx", "tx")


@dataclasses.dataclass
class Analysis:
    """What the analyser decided for one channel of a recording."""

    channel: str
    rate_hz: int
    duration_s: float
    # (start_s, end_s, active level dBFS) of every utterance; an utterance still running at
    # the end of the audio ends at duration_s with level None
    segments: list[tuple[float, float, float | None]]
    line: list[dict]  # {"t", "condition", "level_dbfs", "noise_dbfs", "snr_db"} on change
    tones: list[dict]  # {"t", "tone"}
    echo: dict | None  # the pipeline's tx -> rx coupling estimate (None: not available)
    source: str | None = None  # what the file held, e.g. "mu-law, 8000 Hz, 2 channels"

    @property
    def speech_s(self) -> float:
        return sum(end - start for start, end, _ in self.segments)

    def as_dict(self) -> dict:
        return {
            "channel": self.channel,
            "rate_hz": self.rate_hz,
            "source": self.source,
            "duration_s": round(self.duration_s, 3),
            "speech_s": round(self.speech_s, 3),
            "segments": [
                {"start_s": round(a, 3), "end_s": round(b, 3), "level_dbfs": None if lv is None else round(lv, 1)}
                for a, b, lv in self.segments
            ],
            "line": self.line,
            "tones": self.tones,
            "echo": self.echo,
        }


def echo_estimate(pipeline: Pipeline) -> dict | None:
    """The pipeline's current tx -> rx coupling estimate ({"coupling_db", "delay_ms"}, as in
    telemetry), or None when there is none (echo analysis off, no consistent echo seen)."""
    est = echo_telemetry(pipeline)
    if est["echo_coupling_db"] is None:
        return None
    return {"coupling_db": round(est["echo_coupling_db"], 1), "delay_ms": est["echo_delay_ms"]}


def analyze_pcm(
    pcm: np.ndarray,
    rate_hz: int,
    settings: Settings,
    profile: Profile,
    channel: str = "rx",
    tx: np.ndarray | None = None,
    block_s: float = REPLAY_BLOCK_S,
) -> Analysis:
    """Run int16 `pcm` as `channel` (and, for rx, the agent's `tx`) through a pipeline."""
    if channel not in CHANNELS:
        raise InputError(f"--channel: {channel!r} is not rx or tx")
    settings = settings.replace(audio={"rate_hz": rate_hz})
    pipeline = Pipeline(settings, profile, lambda event: None, 0.0)
    pipeline.start(0.0)
    n_total = len(pcm)
    step = max(1, round(block_s * rate_hz))
    segments: list[tuple[float, float, float | None]] = []
    line: list[dict] = []
    tones: list[dict] = []
    start_t = None
    for i in range(0, n_total, step):
        block = pcm[i : i + step]
        other = None
        if tx is not None:
            other = tx[i : i + len(block)]
            if len(other) < len(block):
                other = np.concatenate((other, np.zeros(len(block) - len(other), dtype=np.int16)))
        edges = pipeline.feed(i / rate_hz, *((other, block) if channel == "rx" else (block, None)))
        for e in edges:
            if e.channel != channel:
                continue
            if isinstance(e, SpeechStart):
                start_t = e.start_t
            elif isinstance(e, SpeechEnd):
                segments.append((e.end_t - e.duration_s, e.end_t, e.active_level_dbfs))
                start_t = None
            elif isinstance(e, LineChange):
                line.append(
                    {
                        "t": round(e.t, 3),
                        "condition": e.condition,
                        "level_dbfs": round(e.level_dbfs, 1),
                        "noise_dbfs": round(e.noise_dbfs, 1),
                        "snr_db": round(e.snr_db, 1),
                    }
                )
            elif isinstance(e, ToneDetected):
                tones.append({"t": round(e.t, 3), "tone": e.tone})
    duration_s = n_total / rate_hz
    if start_t is not None:
        segments.append((start_t, duration_s, None))
    echo = echo_estimate(pipeline) if tx is not None else None
    pipeline.stop(duration_s)
    return Analysis(channel, rate_hz, duration_s, segments, line, tones, echo)


def channel_layout(text: str | None, path: str, channels: int, channel: str) -> tuple[str, ...]:
    """The station channel of each of the file's channels, from `--channels` ("rx,tx",
    "tx,rx", "-,rx", ...; "-" is a channel to leave out). A mono file is `channel` (as
    `--channel` says); a file of more channels needs the option."""
    if text is None:
        if channels == 1:
            return (channel,)
        raise InputError(
            f"{shown(path)}: {channels} channels; say which is the customer and which the agent, "
            f"e.g. --channels {','.join(['rx', 'tx', *['-'] * (channels - 2)])}"
        )
    layout = tuple(part.strip() for part in text.split(","))
    bad = [part for part in layout if part not in ("rx", "tx", "-")]
    if bad or not layout:
        raise InputError(f"--channels: {text!r}: each of the file's channels is rx, tx or - (left out)")
    if any(layout.count(ch) > 1 for ch in CHANNELS):
        raise InputError(f"--channels: {text!r}: rx and tx at most once each")
    if len(layout) != channels:
        raise InputError(f"--channels: {text!r} names {len(layout)} channels, but {shown(path)} has {channels}")
    return layout


def analyze_file(
    path: str,
    settings: Settings,
    profile: Profile,
    channel: str = "rx",
    tx_path: str | None = None,
    block_s: float = REPLAY_BLOCK_S,
    channels: str | None = None,
) -> Analysis:
    """Read the recording(s) and analyse `channel`; InputError (one line, exit 2) for bad
    files and options. A file of two or more channels is split by `channels` (see
    channel_layout); its tx channel, or the file `tx_path`, is the agent's channel beside rx."""
    if tx_path is not None and channel != "rx":
        raise InputError("--tx: the agent's channel is only used with --channel rx")
    rec = read_recording(path)
    layout = channel_layout(channels, path, rec.channels, channel)
    if channel not in layout:
        raise InputError(f"--channels: {channels!r} has no {channel} channel to analyse (--channel {channel})")
    pcm = np.ascontiguousarray(rec.samples[:, layout.index(channel)])
    tx = None
    if channel == "rx" and "tx" in layout:
        if tx_path is not None:
            raise InputError(f"--tx: {shown(path)} already holds the agent's channel (--channels {channels})")
        tx = np.ascontiguousarray(rec.samples[:, layout.index("tx")])
    elif tx_path is not None:
        other = read_recording(tx_path, to_rate_hz=rec.rate_hz)
        if other.channels != 1:
            raise InputError(f"{shown(tx_path)}: {other.channels} channels; --tx takes a mono recording of the agent")
        tx = other.samples[:, 0]
    result = analyze_pcm(pcm, rec.rate_hz, settings, profile, channel, tx, block_s)
    return dataclasses.replace(result, source=rec.describe())


def format_text(path: str, a: Analysis) -> str:
    """The readable report: one line per decision, in time order."""
    lines = [
        (
            f"{shown(path)}: {a.channel}, {a.rate_hz} Hz, {a.duration_s:.2f} s; "
            f"{len(a.segments)} utterances, {a.speech_s:.2f} s of speech" + (f"; file: {a.source}" if a.source else "")
        )
    ]
    items = [
        (
            s,
            f"{s:9.3f}  speech  {s:.3f}-{e:.3f} s ({e - s:.2f} s"
            + (f", {lv:.1f} dBFS)" if lv is not None else ", still running)"),
        )
        for s, e, lv in a.segments
    ]
    items += [
        (
            c["t"],
            (
                f"{c['t']:9.3f}  line    {c['condition']} (speech {c['level_dbfs']} dBFS, "
                f"noise {c['noise_dbfs']} dBFS, SNR {c['snr_db']} dB)"
            ),
        )
        for c in a.line
    ]
    items += [(x["t"], f"{x['t']:9.3f}  tone    {x['tone']}") for x in a.tones]
    lines += [text for _, text in sorted(items, key=lambda it: it[0])]
    if a.echo is not None:
        lines.append("echo    " + ", ".join(f"{k} {v}" for k, v in a.echo.items()))
    return "\n".join(lines)


def format_json(path: str, a: Analysis) -> str:
    return json.dumps({"file": str(path), **a.as_dict()}, ensure_ascii=False)
