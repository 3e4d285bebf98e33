"""A private PulseAudio daemon with a null sink, for the real audio path in the tests.

PortAudio's ALSA host API sees a `pulse` device through libasound2-plugins; with
PULSE_SERVER pointing at our daemon and PULSE_SOURCE at the null sink's monitor, a
PyAudio capture from device "pulse" records whatever `paplay` plays into the sink. The
daemon runs as the test user (root is fine without --system as long as HOME and
PULSE_RUNTIME_PATH point into a private directory). `kill()` and `start()` let a test take
the "device" away and bring it back.

What we found on this route (PortAudio 19.6 ALSA host API -> libasound2-plugins -> pulse):
- the `pulse` device appears as PortAudio device "pulse" (and "default"); PULSE_SOURCE picks
  the monitor, `paplay --channel-map=front-left|front-right` a single capture channel;
- the first block arrives ~0.6 s after the stream opens (hence the backend's start grace);
- when the server dies, a *blocking* read raises OSError -9999 "Unanticipated host error",
  but `get_read_available()` just returns 0 forever, so the backend also treats "no data for
  stall_fault_s / 2" as a lost device;
- a new PortAudio instance (Pa_Initialize) is needed to see the server again after a restart;
- every device scan prints ALSA/JACK chatter on fd 2 (the backend routes it to debug logs).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from firmware.errors import InputError
from firmware.sim.speech import PROMPTS_DIRS, PROMPTS_PACKAGES, prompts_dir

SINK = "hs_null"
try:  # wherever the prompts are (en/ or en_US_f_Allison/, or $HEADSET_PROMPTS_DIR)
    SPEECH_DIR = prompts_dir()
except InputError:
    SPEECH_DIR = PROMPTS_DIRS[0]


class PulseDaemon:
    def __init__(self, runtime_dir: Path, rate_hz: int = 16000):
        self.dir = runtime_dir
        self.rate_hz = rate_hz
        self.socket = runtime_dir / "native"
        self.proc: subprocess.Popen | None = None
        self.env = {
            "PULSE_RUNTIME_PATH": str(runtime_dir),
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_SOURCE": f"{SINK}.monitor",
            "PULSE_SINK": SINK,
            "HOME": str(runtime_dir),
            "XDG_RUNTIME_DIR": str(runtime_dir),
            "PULSE_STATE_PATH": str(runtime_dir / "state"),
        }

    def start(self, timeout_s: float = 10.0) -> None:
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            [
                "pulseaudio",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "-n",
                "--use-pid-file=no",
                "--disable-shm=yes",
                "--log-target=stderr",
                "--log-level=error",
                f"--load=module-null-sink sink_name={SINK} rate={self.rate_hz} channels=2",
                f"--load=module-native-protocol-unix auth-anonymous=1 socket={self.socket}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "pulse.log", "ab"),
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited: {(self.dir / 'pulse.log').read_text()[-500:]}")
            if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("pulseaudio did not come up")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def play(self, wav: Path, channel: str = "front-left") -> subprocess.Popen:
        """Play a mono WAV into one channel of the null sink (front-left = capture channel 0)."""
        return subprocess.Popen(
            ["paplay", f"--device={SINK}", f"--channel-map={channel}", str(wav)],
            env={**os.environ, **self.env},
            stderr=subprocess.DEVNULL,
        )


@pytest.fixture
def pulse(tmp_path_factory, monkeypatch):
    """A running PulseAudio with the null sink; its environment is set for this test."""
    if not shutil.which("pulseaudio") or not shutil.which("paplay"):
        pytest.skip("pulseaudio / pulseaudio-utils not installed (tools/dev installs them)")
    runtime = tmp_path_factory.mktemp("pulse")
    daemon = PulseDaemon(runtime)
    for key, value in daemon.env.items():
        monkeypatch.setenv(key, value)
    # JACK and OSS probing only adds noise and delay to PortAudio's start-up.
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    daemon.start()
    yield daemon
    daemon.kill()


def speech_wav(name: str = "all-circuits-busy-now") -> Path:
    path = SPEECH_DIR / f"{name}.wav"
    if not path.exists():
        pytest.skip(f"{path} missing (apt install {PROMPTS_PACKAGES})")
    return path
