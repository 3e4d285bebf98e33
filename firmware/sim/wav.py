"""WAV files: read mono 16-bit PCM at a supported rate (scenarios), read recordings as
telephone systems and recorders write them (`analyze`), write test and demo audio.

`read_recording` takes what a technician or an outside comparison brings: PCM of 8, 16,
24 or 32 bits, 32/64-bit float, G.711 A-law and mu-law (format tags 1, 3, 6, 7 and their
WAVE_FORMAT_EXTENSIBLE forms), one to eight channels, any rate from 8 kHz to 384 kHz; a
rate the analyser does not run at is resampled (soxr) to the next one up (11025 -> 16000,
44100 -> 48000), or down to 48 kHz. Every problem is an `AudioFormatError` (or another
`InputError`) naming the file and what is wrong with it, in one line.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import os
import stat
import struct
import wave
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soxr

from firmware.errors import AudioFormatError, InputError
from firmware.sim.g711 import alaw_decode, mulaw_decode

SUPPORTED_RATES_HZ = (8000, 16000, 32000, 48000)
RECORDING_RATES_HZ = (8000, 384000)  # what read_recording takes (then resampled to a supported rate)
MAX_CHANNELS = 8
# WAVE format tags read_recording decodes: tag -> (name, container bytes per sample it takes)
ENCODINGS = {1: ("PCM", (1, 2, 3, 4)), 3: ("float", (4, 8)), 6: ("A-law", (1,)), 7: ("mu-law", (1,))}
EXTENSIBLE = 0xFFFE


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
    """Return (rate_hz, int16 samples) of a mono 16-bit PCM WAV file: the scenario format
    (`read_recording` takes what recorders write)."""
    path = Path(path)
    tag, channels, rate_hz, align, bits, data = _read_format(path)
    if tag != 1:
        name = ENCODINGS[tag][0] if tag in ENCODINGS else f"format tag {tag}"
        raise AudioFormatError(f"{shown(path)}: {name} WAV; need 16-bit PCM")
    if channels != 1:
        raise AudioFormatError(f"{shown(path)}: {channels} channels; need mono")
    if bits != 16 or align != 2:
        raise AudioFormatError(f"{shown(path)}: {bits}-bit samples; need 16-bit PCM")
    if rate_hz not in rates_hz:
        raise AudioFormatError(f"{shown(path)}: {rate_hz} Hz; need one of {', '.join(map(str, rates_hz))} Hz")
    if len(data) % 2:
        raise AudioFormatError(f"{shown(path)}: truncated sample data")
    return rate_hz, np.frombuffer(data, dtype="<i2").astype(np.int16)


@dataclasses.dataclass(frozen=True)
class Recording:
    """A recording as `read_recording` returns it: int16 samples at `rate_hz` (one of
    SUPPORTED_RATES_HZ), one column per channel of the file, and what the file held."""

    rate_hz: int
    samples: np.ndarray  # (n, channels) int16
    file_rate_hz: int
    encoding: str  # "16-bit PCM", "24-bit PCM", "32-bit float", "mu-law", ...

    @property
    def channels(self) -> int:
        return self.samples.shape[1]

    def describe(self) -> str:
        """What the file holds, e.g. "mu-law, 8000 Hz, 2 channels" (and the rate analysed at
        when it differs)."""
        text = f"{self.encoding}, {self.file_rate_hz} Hz, {self.channels} channel{'s' if self.channels > 1 else ''}"
        return text if self.rate_hz == self.file_rate_hz else f"{text}, resampled to {self.rate_hz} Hz"


def _chunks(fh: BinaryIO, path: Path) -> tuple[bytes, bytes]:
    """The fmt chunk's body and the data chunk's bytes of a RIFF/WAVE file."""
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise AudioFormatError(f"{shown(path)}: not a PCM WAV file (no RIFF/WAVE header)")
    fmt = None
    while True:
        header = fh.read(8)
        if len(header) < 8:
            raise AudioFormatError(f"{shown(path)}: not a whole WAV file (no {'fmt' if fmt is None else 'data'} chunk)")
        cid, size = header[:4], int.from_bytes(header[4:], "little")
        if cid == b"data":
            if fmt is None:
                raise AudioFormatError(f"{shown(path)}: the data chunk comes before the fmt chunk")
            # 0 and 0xFFFFFFFF: a recorder that was stopped before it wrote the size; read to the end
            return fmt, fh.read() if size in (0, 0xFFFFFFFF) else fh.read(size)
        if cid == b"fmt ":
            if not 16 <= size <= 1024:
                raise AudioFormatError(f"{shown(path)}: a fmt chunk of {size} bytes (need 16-1024)")
            fmt = fh.read(size)
            if len(fmt) < size:
                raise AudioFormatError(f"{shown(path)}: not a whole WAV file (the fmt chunk is cut short)")
            fh.read(size & 1)
        else:
            fh.seek(size + (size & 1), os.SEEK_CUR)  # LIST, fact, bext, cue ...: not needed


def _decode(data: bytes, tag: int, width: int, channels: int) -> np.ndarray:
    """Interleaved sample bytes -> (n, channels) float64 in int16 units."""
    n = len(data) // (width * channels)
    raw = data[: n * width * channels]
    if tag == 7:
        x = mulaw_decode(np.frombuffer(raw, dtype=np.uint8)).astype(np.float64)
    elif tag == 6:
        x = alaw_decode(np.frombuffer(raw, dtype=np.uint8)).astype(np.float64)
    elif tag == 3:
        x = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float64) * 32768.0
        x = np.nan_to_num(x, nan=0.0, posinf=32767.0, neginf=-32768.0)
    elif width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8).astype(np.float64) / 256.0
    else:
        x = np.frombuffer(raw, dtype="<i2" if width == 2 else "<i4").astype(np.float64) / (1 << (8 * width - 16))
    return x.reshape(n, channels)


def _read_format(path: Path) -> tuple[int, int, int, int, int, bytes]:
    """(format tag, channels, rate Hz, block align, bits per sample, sample bytes) of a WAV
    file; WAVE_FORMAT_EXTENSIBLE gives its sub-format's tag."""
    try:
        with open_input(path, "audio file") as fh:
            fmt, data = _chunks(fh, path)
    except OSError as exc:  # a read error after opening
        raise InputError(f"{shown(path)}: cannot read ({exc.strerror or exc})") from None
    tag, channels, rate_hz, _byte_rate, align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == EXTENSIBLE and len(fmt) >= 26:
        tag = int.from_bytes(fmt[24:26], "little")  # the sub-format GUID starts with the tag
    return tag, channels, rate_hz, align, bits, data


def read_recording(path: str | Path, to_rate_hz: int | None = None) -> Recording:
    """Read a recording as telephone systems and recorders write it (see the module docstring);
    at `to_rate_hz` (one of SUPPORTED_RATES_HZ) when given, else at the next supported rate."""
    path = Path(path)
    tag, channels, rate_hz, align, bits, data = _read_format(path)
    if tag not in ENCODINGS:
        known = ", ".join(name for name, _ in ENCODINGS.values())
        raise AudioFormatError(f"{shown(path)}: WAV format tag {tag} (compressed?); need {known}")
    name, widths = ENCODINGS[tag]
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFormatError(f"{shown(path)}: {channels} channels; need 1-{MAX_CHANNELS}")
    width = align // channels
    if align != width * channels or width not in widths or bits > 8 * width or bits == 0:
        raise AudioFormatError(f"{shown(path)}: {bits}-bit {name} in {align}-byte frames; not a layout this reads")
    lo, hi = RECORDING_RATES_HZ
    if not lo <= rate_hz <= hi:
        raise AudioFormatError(f"{shown(path)}: {rate_hz} Hz; need {lo}-{hi} Hz")
    x = _decode(data, tag, width, channels)
    if not len(x):
        raise InputError(f"{shown(path)}: no audio (0 samples)")
    encoding = name if tag in (6, 7) else f"{8 * width if tag == 3 else bits}-bit {name}"
    if to_rate_hz is not None:
        rate = to_rate_hz
    elif rate_hz in SUPPORTED_RATES_HZ:
        rate = rate_hz
    else:
        rate = min([r for r in SUPPORTED_RATES_HZ if r > rate_hz] or [48000])
    if rate != rate_hz:
        x = soxr.resample(x, rate_hz, rate, quality="HQ")
        if not len(x):
            raise InputError(f"{shown(path)}: no audio (too short to resample)")
    pcm = np.clip(np.round(x), -32768, 32767).astype(np.int16).reshape(len(x), channels)
    return Recording(rate, pcm, rate_hz, encoding)


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
