"""WAV files: read mono 16-bit PCM at a supported rate, write test and demo audio.

Every problem is an `AudioFormatError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import wave
from pathlib import Path
from typing import BinaryIO

import numpy as np

from firmware.errors import AudioFormatError, InputError

SUPPORTED_RATES_HZ = (8000, 16000, 32000, 48000)


def shown(path: str | Path) -> str:
    """A path as an error message shows it: as it is, or quoted with escapes when it holds a
    newline or another unprintable character (the message stays one line)."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def open_input(path: str | Path, what: str) -> BinaryIO:
    """Open an input file (`what`: "audio file", "scenario file") for reading, refusing anything
    that is not a regular file: a FIFO or a device would block or never end. The file is opened
    non-blocking and checked with fstat before a byte is read, so a FIFO cannot hang us.
    Every problem is one InputError naming the file."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(f"{shown(path)}: {what} not found") from None
    except PermissionError:
        raise InputError(f"{shown(path)}: cannot read (permission denied)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{shown(path)}: too many levels of symbolic links (a symlink loop?)") from None
        raise InputError(f"{shown(path)}: cannot open ({exc.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"{shown(path)}: is a directory, not a {what}")
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
            raise InputError(f"{shown(path)}: is {kind}, not a regular {what}")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_wav(path: str | Path, rates_hz=SUPPORTED_RATES_HZ) -> tuple[int, np.ndarray]:
    """Return (rate_hz, int16 samples) of a mono 16-bit PCM WAV file."""
    path = Path(path)
    try:
        with open_input(path, "audio file") as fh, wave.open(fh, "rb") as w:
            channels, width, rate_hz, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            if w.getcomptype() != "NONE":
                raise AudioFormatError(f"{shown(path)}: compressed WAV ({w.getcompname()}); need 16-bit PCM")
            data = w.readframes(n)
    except OSError as exc:  # a read error after opening
        raise InputError(f"{shown(path)}: cannot read ({exc.strerror or exc})") from None
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(f"{shown(path)}: not a PCM WAV file ({exc})") from None
    if channels != 1:
        raise AudioFormatError(f"{shown(path)}: {channels} channels; need mono")
    if width != 2:
        raise AudioFormatError(f"{shown(path)}: {8 * width}-bit samples; need 16-bit PCM")
    if rate_hz not in rates_hz:
        raise AudioFormatError(f"{shown(path)}: {rate_hz} Hz; need one of {', '.join(map(str, rates_hz))} Hz")
    samples = np.frombuffer(data, dtype="<i2")
    if len(data) % 2:
        raise AudioFormatError(f"{shown(path)}: truncated sample data")
    return rate_hz, samples.astype(np.int16, copy=False)


def write_wav(path: str | Path, rate_hz: int, samples: np.ndarray) -> Path:
    """Write int16 (or float in -1..1, clipped) mono samples as 16-bit PCM."""
    path = Path(path)
    samples = np.asarray(samples)
    if samples.dtype.kind == "f":
        samples = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(samples.astype("<i2", copy=False).tobytes())
    return path
