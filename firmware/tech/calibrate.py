"""`headset-station calibrate`: per-channel gain and the noise threshold, measured at the desk.

Two recordings of `seconds` each: first quiet (no call, nobody speaking) for each
channel's noise floor, then the test phrase (the agent reads it into the microphone
while a test call plays the same phrase on the line). The proposal:

- `audio.tx_gain_db` / `audio.rx_gain_db`: bring the channel's active speech level to
  -26 dBFS (the ITU-T P.56 nominal level the profile thresholds assume), limited so the
  loudest peak stays below -1 dBFS; a channel without speech keeps its gain.
- `profile.noise_dbfs`: raised to 10 dB above the customer line's own idle floor (after
  gain) when the default would call an idle line "noisy"; never lowered.

It is written into the station config on confirmation, editing only those keys: into its
`station.local_config` (local.toml on a provisioned desk, which re-provisioning never touches)
when the config names one (firmware.config.edit: comments and layout kept, any TOML form of
the keys understood; the file keeps its owner, group and mode, so `sudo headset-station
calibrate` leaves it readable by the service). Run it with the service stopped (the sound card
is not shared).
"""

from __future__ import annotations

from pathlib import Path

from firmware.analysis.measure import MAX_HUM_DBFS, measure
from firmware.config.edit import set_keys, write_atomic
from firmware.config.profiles import load_profile
from firmware.config.settings import Settings, local_config_path, settings_from_dict
from firmware.config.tomlfile import TomlFileError, parse_toml
from firmware.config.validate import Check, check_value
from firmware.errors import ConfigError, InputError, StationError
from firmware.runtime.sources import open_source
from hal.audio import record

TARGET_SPEECH_DBFS = -26.0
PEAK_LIMIT_DBFS = -1.0
GAIN_RANGE_DB = (-20.0, 30.0)
NOISE_MARGIN_DB = 10.0
MIN_SPEECH_SHARE = 0.1
SECONDS = Check(lo=0.5, hi=60.0)  # each recording; the CLI's --seconds is checked against this too
PHRASE = "Hello, thank you for calling. How can I help you today? / 您好，很高兴为您服务。"


def _round_half(x: float) -> float:
    return round(x * 2) / 2


def propose(settings: Settings, profile, quiet: dict, speech: dict) -> tuple[dict, list[str]]:
    """({(section, key): value}, explanation lines) from ChannelReports per channel."""
    a = settings.audio
    updates, notes = {}, []
    gains = {"tx": a.tx_gain_db, "rx": a.rx_gain_db}
    for ch in ("tx", "rx"):
        r = speech.get(ch)
        if r is None:
            continue
        if r.speech_share < MIN_SPEECH_SHARE:
            notes.append(f"{ch}: no test phrase heard (speech {r.speech_share:.0%}); gain stays {gains[ch]:+.1f} dB")
            continue
        gain = TARGET_SPEECH_DBFS - r.speech_dbfs
        gain = min(gain, PEAK_LIMIT_DBFS - r.peak_dbfs)
        gain = _round_half(max(GAIN_RANGE_DB[0], min(GAIN_RANGE_DB[1], gain)))
        gains[ch] = gain
        updates[("audio", f"{ch}_gain_db")] = gain
        notes.append(
            f"{ch}: speech at {r.speech_dbfs:.1f} dBFS, peak {r.peak_dbfs:.1f} dBFS -> gain {gain:+.1f} dB "
            f"(target {TARGET_SPEECH_DBFS:g} dBFS)"
        )
    for ch in ("tx", "rx"):
        r = quiet.get(ch)
        if r is not None and r.hum is not None and r.hum[1] >= MAX_HUM_DBFS:
            notes.append(
                f"{ch}: mains hum ({r.hum[0]} Hz) at {r.hum[1]:.1f} dBFS in the quiet recording: a ground loop? "
                "fix the tap's ground first; a raised noise threshold would only hide it"
            )
    rq = quiet.get("rx")
    if rq is not None:
        floor = rq.noise_dbfs + gains["rx"]
        wanted = round(floor + NOISE_MARGIN_DB, 1)
        if wanted > profile.noise_dbfs:
            updates[("profile", "noise_dbfs")] = min(wanted, -20.0)
            notes.append(
                f"rx: idle floor {floor:.1f} dBFS after gain; noise threshold {profile.noise_dbfs:g} -> "
                f"{min(wanted, -20.0):g} dBFS so an idle line is not 'noisy'"
            )
        else:
            notes.append(
                f"rx: idle floor {floor:.1f} dBFS after gain; noise threshold {profile.noise_dbfs:g} dBFS kept"
            )
    return updates, notes


def _record_both(settings: Settings, seconds: float) -> dict:

    tx, rx = record(open_source(settings.audio), seconds)
    agg = settings.analysis.vad_aggressiveness
    return {ch: measure(x, settings.audio.rate_hz, agg) for ch, x in (("tx", tx), ("rx", rx)) if x is not None}


def _ask(ask, prompt: str) -> str:
    """The technician's answer; InputError (exit 2, one line) when standard input is closed."""
    try:
        return ask(prompt)
    except EOFError:
        raise InputError(
            "standard input closed at the prompt; run it at a terminal, or with --yes to write without asking"
        ) from None


def run_calibrate(
    settings: Settings,
    config_path,
    *,
    seconds: float = 3.0,
    assume_yes: bool = False,
    out=print,
    ask=input,
    recorder=None,
) -> int:
    _value, problems = check_value("calibrate: --seconds", seconds, float, SECONDS)
    if problems:
        raise InputError(problems[0])
    recorder = recorder or _record_both
    profile = load_profile(settings.station.profile, settings.profile)
    try:
        out(f"1/2 Quiet, please: measuring the noise floor for {seconds:g} s ...")
        quiet = recorder(settings, seconds)
        for ch, r in quiet.items():
            out(f"    {ch}: {r.line()}")
        if not assume_yes:
            _ask(ask, "2/2 Press Enter, then read the test phrase (and play it on the line): ")
        out(f'2/2 Recording the test phrase for {seconds:g} s: "{PHRASE}"')
        speech = recorder(settings, seconds)
        for ch, r in speech.items():
            out(f"    {ch}: {r.line()}")
    except StationError as exc:
        out(f"calibrate: {exc}")
        return exc.exit_code
    updates, notes = propose(settings, profile, quiet, speech)
    for note in notes:
        out(f"    {note}")
    if not updates:
        out("calibrate: nothing to change")
        return 0
    lines = [f"[{s}] {k} = {v}" for (s, k), v in updates.items()]
    out("Proposed: " + "; ".join(lines))
    if not config_path:
        out("calibrate: no --config given; add the keys above to the station config")
        return 0
    path = local_config_path(config_path, settings.station.local_config) or Path(config_path)
    if not assume_yes:
        answer = _ask(ask, f"Write them to {path}? [y/N] ").strip().lower()
        if not answer.startswith("y"):
            out("calibrate: nothing written")
            return 0
    try:
        text = set_keys(path.read_text(encoding="utf-8") if path.exists() else "", updates, str(path))
        settings_from_dict(parse_toml(text), str(path))  # the result must still be a valid config
        write_atomic(path, text)
    except TomlFileError as exc:
        out(f"calibrate: refusing to write: {path}: {exc.reason}")
        return ConfigError.exit_code
    except UnicodeDecodeError:
        out(f"calibrate: refusing to write: {path}: not UTF-8 text")
        return ConfigError.exit_code
    except ConfigError as exc:
        out(f"calibrate: refusing to write: {exc}")
        return exc.exit_code
    except OSError as exc:
        out(f"calibrate: cannot write {path}: {exc.strerror}")
        return 1
    out(
        f"calibrate: wrote {len(updates)} key(s) to {path} (previous version in {path.name}.bak); "
        "restart the service to use them"
    )
    return 0
