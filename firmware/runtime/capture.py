"""The supervised capture loop: an audio source read on its own thread into the service's mailbox.

In the style of wyoming-satellite's `_mic_task_proc`: open, read blocks until the source
fails, log, close, wait `audio.reopen_s`, reopen, forever. The rules never wait on the
device: the service's main loop takes blocks from the mailbox (firmware.runtime.messages) with a
timeout. It sends an `AudioBlock` per block (dropped and counted when the bounded audio
queue is full) and an `AudioFailure` (never dropped) when the source fails or cannot be
opened.
"""

from __future__ import annotations

import logging
import threading
import time

from firmware.errors import AudioError
from firmware.runtime.liveness import Heartbeat
from firmware.runtime.messages import AudioBlock, AudioFailure, Mailbox

log = logging.getLogger(__name__)


class CaptureThread:
    def __init__(self, source, out: Mailbox, reopen_s: float, heartbeat: Heartbeat | None = None):
        self.source = source
        self.out = out
        self.reopen_s = reopen_s
        self.heartbeat = heartbeat or Heartbeat("audio")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audio", daemon=True)
        self.dropped = 0
        self.opens = 0

    def start(self) -> CaptureThread:
        self._thread.start()
        return self

    def _put(self, tx, rx) -> None:
        frames = len(tx) if tx is not None else (len(rx) if rx is not None else self.source.block_frames)
        if not self.out.put_audio(AudioBlock(time.monotonic(), tx, rx, frames)):
            # The rules loop is behind: losing audio is better than blocking the device.
            self.dropped += 1

    def _run(self) -> None:
        failed = None
        while not self._stop.is_set():
            self.heartbeat.beat()
            try:
                self.source.open()
                self.opens += 1
                if failed:
                    log.info("audio: %s open again", self.source.name)
                failed = None
                while not self._stop.is_set():
                    self.heartbeat.beat()
                    tx, rx = self.source.read()
                    self._put(tx, rx)
            except AudioError as exc:
                detail = str(exc)
            except Exception as exc:  # a backend bug must not kill capture for good
                detail = f"{type(exc).__name__}: {exc}"
                log.exception("audio: unexpected error")
            else:
                break
            finally:
                self.source.close()
            if detail != failed:
                log.warning("audio: %s; retrying every %g s", detail, self.reopen_s)
            failed = detail
            self.out.put(AudioFailure(time.monotonic(), detail))
            # Keep beating while we wait, so the watchdog sees a live (retrying) loop.
            deadline = time.monotonic() + self.reopen_s
            while not self._stop.is_set() and time.monotonic() < deadline:
                self.heartbeat.beat()
                self._stop.wait(min(0.1, self.reopen_s))

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)
