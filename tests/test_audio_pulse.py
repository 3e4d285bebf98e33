"""The PyAudio backend against a real PulseAudio null sink: speech played in, speech captured."""

import time

import numpy as np
import pytest
import webrtcvad
from fixtures_pulse import speech_wav

from firmware.config.settings import AudioSettings
from firmware.errors import AudioError
from firmware.runtime.capture import CaptureThread
from firmware.runtime.messages import AudioBlock, AudioFailure, Mailbox
from hal.audio import PyAudioSource, open_source

RATE_HZ = 16000


def pulse_settings(**kw):
    base = dict(
        backend="pyaudio",
        device="pulse",
        rate_hz=RATE_HZ,
        channels=2,
        buffer_ms=60,
        tx_channel=0,
        rx_channel=1,
        stall_fault_s=2.0,
        reopen_s=0.5,
    )
    base.update(kw)
    return AudioSettings(**base)


def speech_frames(samples: np.ndarray, rate_hz=RATE_HZ, frame_ms=30) -> int:
    vad = webrtcvad.Vad(2)
    n = rate_hz * frame_ms // 1000
    return sum(vad.is_speech(samples[i : i + n].tobytes(), rate_hz) for i in range(0, len(samples) - n + 1, n))


def capture(source, seconds):
    tx, rx = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        a, b = source.read()
        tx.append(a)
        rx.append(b)
    return np.concatenate(tx), np.concatenate(rx)


def test_backend_is_chosen_by_config_not_import():
    assert isinstance(open_source(pulse_settings()), PyAudioSource)
    assert open_source(pulse_settings(backend="silence")).name == "silence"


def test_played_prompt_is_captured_as_speech_on_the_mapped_channel(pulse):
    source = open_source(pulse_settings())
    with source:
        assert "pulse" in source.device_name
        time.sleep(0.2)
        player = pulse.play(speech_wav(), "front-left")  # capture channel 0 = tx
        tx, rx = capture(source, 3.0)
        player.wait(5)
    assert tx.dtype == np.int16 and len(tx) == len(rx)
    assert speech_frames(tx) >= 20, "the agent channel should carry the played prompt"
    assert speech_frames(rx) <= 2, "nothing was played into the customer channel"
    # Swapping the channel map moves the prompt to rx.
    with open_source(pulse_settings(tx_channel=1, rx_channel=0)) as source:
        time.sleep(0.2)
        player = pulse.play(speech_wav(), "front-left")
        tx, rx = capture(source, 3.0)
        player.wait(5)
    assert speech_frames(rx) >= 20 and speech_frames(tx) <= 2


def test_unknown_device_name_is_a_one_line_audio_error(pulse):
    with pytest.raises(AudioError, match="no-such-card.*found: "):
        open_source(pulse_settings(device="no-such-card")).open()


def next_of_kind(box, kind, timeout_s):
    """The next capture message of `kind` (AudioBlock or AudioFailure), skipping others."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        messages, blocks = box.take(0.1)
        for item in [*messages, *blocks]:
            if isinstance(item, kind):
                return item
    raise AssertionError(f"no {kind.__name__} within {timeout_s} s")


def test_capture_thread_reports_loss_and_reopens_when_the_server_returns(pulse):
    box = Mailbox(audio_blocks=200)
    cap = CaptureThread(open_source(pulse_settings()), box, reopen_s=0.3).start()
    try:
        next_of_kind(box, AudioBlock, timeout_s=5)
        pulse.kill()
        t_kill = time.monotonic()
        item = next_of_kind(box, AudioFailure, timeout_s=5)
        assert item.t_mono - t_kill < 2.0, "loss must be noticed within audio.stall_fault_s"
        pulse.start()
        t_back = time.monotonic()
        item = next_of_kind(box, AudioBlock, timeout_s=10)
        assert item.t_mono - t_back < 5.0
        assert cap.opens >= 2
    finally:
        cap.stop()
