"""What other threads send the service's rules loop, and the mailbox they send it through.

Two queues behind one wake-up:

- audio blocks from the capture thread: bounded (`audio_blocks`) and *dropping*: when the
  rules loop is behind, the newest block is dropped (and counted) rather than blocking the
  sound card's thread;
- typed messages (GPIO edges, faults, calls into the loop, audio failures): unbounded and
  never blocking, so any thread, the rules loop included, can always send one. The rules
  loop raising a storage fault from inside its own event sink therefore cannot block on
  itself, however many audio blocks are queued.

All `t_mono` timestamps are time.monotonic().
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AudioBlock:
    """One captured block; `frames` counts samples per channel (a channel may be None)."""

    t_mono: float
    tx: np.ndarray | None
    rx: np.ndarray | None
    frames: int


@dataclass(frozen=True)
class AudioFailure:
    """The audio source failed or could not be opened."""

    t_mono: float
    detail: str


@dataclass(frozen=True)
class InputEdge:
    """A debounced GPIO edge (hook, mute, ring)."""

    t_mono: float
    name: str
    value: Any


@dataclass(frozen=True)
class FaultReport:
    """A fault (or its clearing) from reporting or storage, for the station to emit and cue."""

    component: str
    detail: str
    cleared: bool


@dataclass(frozen=True)
class LoopCall:
    """Run `fn` on the rules loop (which owns the pipeline) and resolve `future` with its result."""

    fn: Callable[[], Any]
    future: Future


Message = AudioFailure | InputEdge | FaultReport | LoopCall


class Mailbox:
    """A bounded, dropping queue of AudioBlocks and an unbounded queue of Messages."""

    def __init__(self, audio_blocks: int):
        self.audio_blocks = audio_blocks
        self._cond = threading.Condition()
        self._audio: collections.deque[AudioBlock] = collections.deque()
        self._messages: collections.deque[Message] = collections.deque()
        self.dropped_blocks = 0

    def put_audio(self, block: AudioBlock) -> bool:
        """Queue one block; False (and counted) when the queue is full: the block is dropped."""
        with self._cond:
            if len(self._audio) >= self.audio_blocks:
                self.dropped_blocks += 1
                return False
            self._audio.append(block)
            self._cond.notify()
        return True

    def put(self, message: Message) -> None:
        """Queue one message; never blocks, never drops."""
        with self._cond:
            self._messages.append(message)
            self._cond.notify()

    def take(self, timeout_s: float) -> tuple[list[Message], list[AudioBlock]]:
        """Everything queued (messages, audio blocks), waiting up to `timeout_s` if nothing is."""
        with self._cond:
            if not self._audio and not self._messages:
                self._cond.wait(timeout_s)
            messages, self._messages = list(self._messages), collections.deque()
            blocks, self._audio = list(self._audio), collections.deque()
        return messages, blocks

    @property
    def audio_full(self) -> bool:
        with self._cond:
            return len(self._audio) >= self.audio_blocks
