"""Audio sources: one block of both channels at a time, from a device, files or a scenario.

`AudioSource` is the backend interface (like gpiozero's `Factory`): `open()`, `read()` ->
`(tx, rx)` int16 blocks of `block_frames` samples (None = that channel is absent),
`close()`. The backend is picked by `audio.backend` through `open_source`, never by
import, so firmware code and the tests never import PyAudio unless a config asks for it.

- `pyaudio`: a stereo or mono capture from the device whose name contains `audio.device`
  (index numbers shift when USB devices come and go). PortAudio is re-initialised on each
  open so a re-plugged card is found again. Reads poll `get_read_available()` instead of
  blocking, so a device that vanishes without an error cannot hang the capture thread.
- `silence`: digital silence at the real-time pace.
- `ArraySource`: two sample arrays in real time, then silence; `firmware.runtime.sources`
  builds it from WAV files (`audio.backend = "wav"`) or a scenario (`run --simulate --scenario`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from typing import Any

import numpy as np

from firmware.config.settings import AudioSettings
from firmware.errors import AudioError

log = logging.getLogger(__name__)
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _alsa_chatter_to_debug():
    """PortAudio's device scan makes ALSA and JACK print dozens of lines on fd 2 (not via
    Python), on every reopen while a card is missing: that would flood the journal. Catch
    fd 2 for the scan and pass it on at debug level."""
    if os.environ.get("HS_AUDIO_DEBUG"):
        yield
        return
    with _STDERR_LOCK, tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            chatter = tmp.read(8192).decode("utf-8", "replace").strip()
            if chatter:
                log.debug("portaudio: %s", " | ".join(chatter.splitlines()[:20]))


class AudioSource:
    """Backend interface. `read()` raises AudioError when the device fails or is lost."""

    name = "audio"

    def __init__(self, settings: AudioSettings):
        self.settings = settings
        self.rate_hz = settings.rate_hz
        self.block_frames = settings.rate_hz * settings.buffer_ms // 1000

    @property
    def block_s(self) -> float:
        return self.block_frames / self.rate_hz

    def open(self) -> None:
        """Acquire the device; raise AudioError with a one-line reason if it is not there."""

    def read(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device; safe twice and after a failed open."""

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()


class _PacedSource(AudioSource):
    """Generated audio delivered no faster than real time (one block per block_s)."""

    def open(self) -> None:
        self._next_s = time.monotonic()

    def _pace(self) -> None:
        self._next_s += self.block_s
        delay_s = self._next_s - time.monotonic()
        if delay_s > 0:
            time.sleep(delay_s)
        elif delay_s < -1.0:
            self._next_s = time.monotonic()  # we were suspended: do not burst to catch up


class SilenceSource(_PacedSource):
    name = "silence"

    def read(self):
        self._pace()
        zeros = np.zeros(self.block_frames, dtype=np.int16)
        return zeros, (zeros if self.settings.channels == 2 else None)


class ArraySource(_PacedSource):
    """Two int16 arrays played in real time; silence once they run out."""

    def __init__(self, settings: AudioSettings, tx, rx, name="array"):
        super().__init__(settings)
        self.tx, self.rx, self.name = tx, rx, name
        self.pos = 0

    def read(self):
        self._pace()
        start, stop = self.pos, self.pos + self.block_frames
        self.pos = stop
        return _slice(self.tx, start, stop), _slice(self.rx, start, stop)


def _slice(samples, start, stop):
    if samples is None:
        return None
    out = samples[start:stop]
    if len(out) < stop - start:
        out = np.concatenate([out, np.zeros(stop - start - len(out), dtype=np.int16)])
    return out


START_GRACE_S = 2.0  # a capture through PulseAudio takes ~0.6 s to deliver its first block


class PyAudioSource(AudioSource):
    name = "pyaudio"

    def __init__(self, settings: AudioSettings):
        super().__init__(settings)
        # pyaudio.PyAudio and its Stream while open; PyAudio ships no type information
        self._pa: Any = None
        self._stream: Any = None
        self.device_name = ""
        self._last_data_s = 0.0
        # A vanished device often just stops delivering (ALSA's pulse plugin reports nothing):
        # give up on it in half the fault time, so the fault is raised within audio.stall_fault_s.
        self.read_stall_s = max(0.5, settings.stall_fault_s / 2)
        self._start_grace_s = START_GRACE_S

    def find_device(self, pa) -> int:
        """Index of the first input device whose name contains audio.device (case-insensitive)."""
        want = self.settings.device.lower()
        if not want:  # empty = PortAudio's default input, if it has the channels we need
            try:
                info = pa.get_default_input_device_info()
                if info.get("maxInputChannels", 0) >= self.settings.channels:
                    self.device_name = info["name"]
                    return int(info["index"])
            except OSError:
                pass  # no default input: take the first that fits
        names = []
        for index in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(index)
            if info.get("maxInputChannels", 0) < self.settings.channels:
                continue
            names.append(info["name"])
            if not want or want in info["name"].lower():
                self.device_name = info["name"]
                return index
        raise AudioError(
            f"audio.device {self.settings.device!r}: no capture device with "
            f"{self.settings.channels} channels matches (found: {', '.join(names) or 'none'})"
        )

    def open(self) -> None:
        import pyaudio  # only when the config asks for this backend

        self.close()
        s = self.settings
        try:
            with _alsa_chatter_to_debug():
                self._pa = pyaudio.PyAudio()  # a fresh PortAudio rescans the devices
                index = self.find_device(self._pa)
                self._stream = self._pa.open(
                    format=pyaudio.paInt16,
                    channels=s.channels,
                    rate=s.rate_hz,
                    input=True,
                    input_device_index=index,
                    frames_per_buffer=self.block_frames,
                )
        except AudioError:
            self.close()
            raise
        except (OSError, ValueError) as exc:
            self.close()
            raise AudioError(
                f"audio.device {s.device or 'default'!r}: cannot open at {s.rate_hz} Hz, {s.channels} ch ({exc})"
            ) from None
        self._last_data_s = time.monotonic()
        self._start_grace_s = START_GRACE_S

    def read(self):
        s, n = self.settings, self.block_frames
        poll_s = max(0.002, self.block_s / 8)
        while True:
            try:
                if self._stream.get_read_available() >= n:
                    data = self._stream.read(n, exception_on_overflow=False)
                    break
            except (OSError, AttributeError) as exc:
                raise AudioError(f"audio device {self.device_name!r} lost ({exc})") from None
            if time.monotonic() - self._last_data_s > self.read_stall_s + self._start_grace_s:
                raise AudioError(f"audio device {self.device_name!r}: no data for {self.read_stall_s:g} s")
            time.sleep(poll_s)
        self._last_data_s = time.monotonic()
        self._start_grace_s = 0.0
        block = np.frombuffer(data, dtype="<i2")
        if s.channels == 1:
            return block.astype(np.int16), None
        block = block.reshape(-1, 2)
        return (np.ascontiguousarray(block[:, s.tx_channel]), np.ascontiguousarray(block[:, s.rx_channel]))

    def close(self) -> None:
        stream, self._stream = self._stream, None
        pa, self._pa = self._pa, None
        if stream is None and pa is None:
            return
        with _alsa_chatter_to_debug():
            for step in (getattr(stream, "stop_stream", None), getattr(stream, "close", None)):
                try:
                    if step is not None:
                        step()
                except OSError:
                    pass  # the device is already gone
            if pa is not None:
                pa.terminate()


BACKENDS = {
    "pyaudio": PyAudioSource,
    "silence": SilenceSource,
}


def open_source(settings: AudioSettings) -> AudioSource:
    """The configured device backend, `pyaudio` or `silence` (not yet opened). File audio
    (the `wav` backend, scenarios) is built by `firmware.runtime.sources`."""
    try:
        make = BACKENDS[settings.backend]
    except KeyError:
        raise AudioError(f"audio.backend {settings.backend!r}: unknown (known: {', '.join(BACKENDS)})") from None
    return make(settings)


def record(source: AudioSource, seconds: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Open the source, capture `seconds` of both channels, close it (selftest, calibrate)."""
    tx: list[np.ndarray] = []
    rx: list[np.ndarray] = []
    with source:
        for _ in range(max(1, int(round(seconds / source.block_s)))):
            a, b = source.read()
            if a is not None:
                tx.append(a)
            if b is not None:
                rx.append(b)
    return np.concatenate(tx), (np.concatenate(rx) if rx else None)
