"""Call audio built from real recorded speech, for tests, the demo and the benchmark.

The voice prompts of the Debian package `asterisk-core-sounds-en-wav` (8 kHz 16-bit mono, in
/usr/share/asterisk/sounds/en_US_f_Allison; the `en` link to it comes from
`asterisk-core-sounds-en`) are concatenated with chosen gaps, scaled to a target active
speech level, resampled to the capture rate and mixed with noise at a known SNR, so the truth
(where the speech is, how loud, how noisy) is known by construction.

Signals are float64 arrays in int16 units (32767 = full scale); `to_int16` rounds and clips.
Levels are dBFS with a full-scale sine at 0 dBFS (see `firmware.levels`); the active level is
the P.56-style `firmware.levels.active_level_dbfs`. Everything random takes a `seed`.
"""

from __future__ import annotations

import functools
import numbers
import os
from pathlib import Path

import numpy as np
import soxr

from firmware.analysis.levels import active_level_dbfs, dbfs_to_power
from firmware.errors import InputError
from firmware.sim.wav import read_wav, write_wav

PROMPTS_ENV = "HEADSET_PROMPTS_DIR"
# Where Debian's packages put the prompts: `asterisk-core-sounds-en-wav` installs them in
# en_US_f_Allison/; the `en` link to that comes from `asterisk-core-sounds-en`, a recommends
# that --no-install-recommends leaves out. Looked for in this order.
PROMPTS_DIRS = (Path("/usr/share/asterisk/sounds/en"), Path("/usr/share/asterisk/sounds/en_US_f_Allison"))
PROMPTS_PACKAGES = "asterisk-core-sounds-en asterisk-core-sounds-en-wav"
PROMPT_RATE_HZ = 8000

# Prompts that are speech by one talker, 1.5-8 s long: the default material for calls.
SPEECH_PROMPTS = (
    "vm-intro",
    "vm-instructions",
    "vm-newuser",
    "vm-leavemsg",
    "vm-nobodyavail",
    "queue-periodic-announce",
    "dir-welcome",
    "privacy-prompt",
    "please-try-call-later",
    "pls-hold-while-try",
    "sorry-youre-having-problems",
    "something-terribly-wrong",
    "cannot-complete-as-dialed",
    "check-number-dial-again",
    "all-circuits-busy-now",
    "vm-review",
    "vm-opts",
    "demo-thanks",
    "auth-incorrect",
    "conf-onlyperson",
)
# Other prompts, used to build babble so babble never contains the target talker's words.
BABBLE_PROMPTS = (
    "vm-msginstruct",
    "dir-intro",
    "conf-usermenu",
    "demo-moreinfo",
    "demo-abouttotry",
    "vm-options",
    "conf-adminmenu",
    "screen-callee-options",
    "demo-echotest",
    "basic-pbx-ivr-main",
)
NOISE_KINDS = ("white", "pink", "babble")


def prompts_dir() -> Path:
    """The prompts directory: $HEADSET_PROMPTS_DIR, else the first of PROMPTS_DIRS holding WAV
    prompts; InputError naming the packages to install if there is none."""
    env = os.environ.get(PROMPTS_ENV)
    candidates = (Path(env),) if env else PROMPTS_DIRS
    for path in candidates:
        if path.is_dir() and any(path.glob("*.wav")):
            return path
    where = " or ".join(str(p) for p in candidates)
    raise InputError(f"{where}: no voice prompts found (sudo apt-get install {PROMPTS_PACKAGES}, or set {PROMPTS_ENV})")


def prompt_names() -> list[str]:
    """Every prompt, as names relative to prompts_dir() without .wav (e.g. 'digits/7')."""
    root = prompts_dir()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.wav"))


@functools.lru_cache(maxsize=256)
def _load(root: str, name: str, rate_hz: int) -> np.ndarray:
    path = Path(root) / f"{name}.wav"
    if not path.exists():
        raise InputError(f"{path}: no such prompt")
    src_hz, pcm = read_wav(path)
    x = resample(pcm.astype(np.float64), src_hz, rate_hz)
    x.setflags(write=False)
    return x


def load_prompt(name: str, rate_hz: int = PROMPT_RATE_HZ) -> np.ndarray:
    """One prompt at `rate_hz` (int16 units, float64; cached, read-only)."""
    return _load(str(prompts_dir()), name, rate_hz)


def resample(x: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Whole-signal resampling (soxr, high quality)."""
    x = np.asarray(x, dtype=np.float64)
    return x.copy() if from_hz == to_hz else soxr.resample(x, from_hz, to_hz, quality="HQ")


def silence(seconds: float, rate_hz: int) -> np.ndarray:
    return np.zeros(int(round(seconds * rate_hz)))


def scale_to(x: np.ndarray, level_dbfs: float, rate_hz: int, active: bool = True) -> np.ndarray:
    """`x` scaled so its active speech level (or, with active=False, its RMS) is `level_dbfs`."""
    if active:
        return x * 10.0 ** ((level_dbfs - active_level_dbfs(x, rate_hz)) / 20.0)
    power = float(np.mean(np.square(x))) if len(x) else 0.0  # exact: no silence floor here
    return x * np.sqrt(dbfs_to_power(level_dbfs) / power) if power > 0 else x


def speech_track(
    prompt_names, gaps_s, rate_hz: int, level_dbfs: float, lead_s: float = 0.0, tail_s: float = 0.0
) -> np.ndarray:
    """Prompts one after another: `lead_s` silence, prompt 0, gap 0, prompt 1, gap 1, ...,
    last prompt, `tail_s`. `gaps_s` is one number or one per gap. Scaled to an active
    level of `level_dbfs`."""
    x, _ = speech_track_segments(prompt_names, gaps_s, rate_hz, level_dbfs, lead_s, tail_s)
    return x


def speech_track_segments(
    prompt_names, gaps_s, rate_hz: int, level_dbfs: float, lead_s: float = 0.0, tail_s: float = 0.0
):
    """As speech_track, also returning [(name, start_s, end_s)] of each prompt."""
    names = list(prompt_names)
    gaps = [float(gaps_s)] * max(0, len(names) - 1) if isinstance(gaps_s, numbers.Real) else [float(g) for g in gaps_s]
    if len(gaps) != max(0, len(names) - 1):
        raise ValueError(f"speech_track: {len(names)} prompts need {len(names) - 1} gaps, got {len(gaps)}")
    parts, segments, t = [silence(lead_s, rate_hz)], [], lead_s
    for i, name in enumerate(names):
        p = load_prompt(name, rate_hz)
        parts.append(p)
        segments.append((name, t, t + len(p) / rate_hz))
        t += len(p) / rate_hz
        if i < len(gaps):
            parts.append(silence(gaps[i], rate_hz))
            t += len(parts[-1]) / rate_hz
    parts.append(silence(tail_s, rate_hz))
    x = np.concatenate(parts)
    return scale_to(x, level_dbfs, rate_hz), segments


def noise(kind: str, n: int, rate_hz: int, seed: int = 0, level_dbfs: float = -30.0) -> np.ndarray:
    """`n` samples of white, pink (1/f power above 100 Hz) or babble (6 other talkers) noise at an RMS
    level of `level_dbfs`."""
    rng = np.random.default_rng(seed)
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind == "pink":
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1.0 / rate_hz)
        # 1/f power (amplitude 1/sqrt(f)) above 100 Hz, flat below: a line has no infrasound.
        spec /= np.sqrt(np.maximum(f, 100.0) / 100.0)
        x = np.fft.irfft(spec, n)
    elif kind == "babble":
        x = np.zeros(n)
        for name in rng.choice(BABBLE_PROMPTS, size=6, replace=False):
            p = load_prompt(str(name), rate_hz)
            p = p / np.sqrt(np.mean(p * p))  # equal talkers
            reps = np.tile(p, n // len(p) + 2)
            start = int(rng.integers(0, len(p)))
            x += reps[start : start + n]
    else:
        raise ValueError(f"noise: unknown kind {kind!r} (known: {', '.join(NOISE_KINDS)})")
    return scale_to(x, level_dbfs, rate_hz, active=False)


def mix(
    speech: np.ndarray, noise_: np.ndarray, snr_db: float, rate_hz: int, speech_level_dbfs: float | None = None
) -> np.ndarray:
    """speech + noise, the noise scaled so that (speech active level - noise RMS level) =
    `snr_db`. The noise is cut or tiled to the speech's length."""
    if speech_level_dbfs is None:
        speech_level_dbfs = active_level_dbfs(speech, rate_hz)
    nz = np.resize(noise_, len(speech))
    return speech + scale_to(nz, speech_level_dbfs - snr_db, rate_hz, active=False)


def tone(freqs_hz, cadence_s, seconds: float, rate_hz: int, level_dbfs: float = -20.0) -> np.ndarray:
    """A call-progress tone: the sum of `freqs_hz` (equal parts) at `level_dbfs` RMS while on,
    switched with the (on_s, off_s) `cadence_s`, for `seconds`."""
    t = np.arange(int(round(seconds * rate_hz))) / rate_hz
    x = sum(np.sin(2 * np.pi * f * t) for f in freqs_hz)
    x = x * np.sqrt(dbfs_to_power(level_dbfs) / np.mean(x * x))
    on_s, off_s = cadence_s
    return x * ((t % (on_s + off_s)) < on_s)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def write(path, x: np.ndarray, rate_hz: int) -> Path:
    """Write a signal (int16 units) as a 16-bit mono WAV."""
    return write_wav(path, rate_hz, to_int16(x))
