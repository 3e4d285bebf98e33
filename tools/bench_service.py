#!/usr/bin/env python3
"""Measure the CPU share of the live service: 16 kHz stereo capture from a PulseAudio null
sink with recorded speech playing on both channels, mock GPIO/LED pins, events published to
a local mosquitto. Prints a Markdown table row set for BENCHMARKS.md.

    .venv/bin/python tools/bench_service.py [SECONDS [BUFFER_MS ...]]

With several BUFFER_MS (capture block sizes) the runs go back to back, one row each, so
their CPU shares can be compared side by side.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fixtures_pulse import SPEECH_DIR, PulseDaemon  # noqa: E402


def main(seconds: float = 40.0, buffer_ms: int = 60) -> None:
    from firmware.config.settings import Settings
    from firmware.runtime.service import Service
    work = Path(tempfile.mkdtemp(prefix="hs-bench-"))
    pulse = PulseDaemon(work)
    os.environ.update(pulse.env)
    pulse.start()
    broker = None
    brokers = []
    if shutil.which("mosquitto"):
        (work / "m.conf").write_text("listener 18839 127.0.0.1\nallow_anonymous true\n")
        broker = subprocess.Popen(["mosquitto", "-c", str(work / "m.conf")], stderr=subprocess.DEVNULL)
        brokers = ["mqtt://127.0.0.1:18839"]
        time.sleep(0.5)
    prompts = sorted(SPEECH_DIR.glob("*.wav"))[:40]
    stop = threading.Event()

    def play(channel):
        i = 0
        while not stop.is_set():
            pulse.play(prompts[i % len(prompts)], channel).wait()
            i += 1
    settings = Settings().replace(
        station={"id": "bench-1", "state_dir": str(work / "state")},
        audio={"backend": "pyaudio", "device": "pulse", "rate_hz": 16000, "channels": 2, "buffer_ms": buffer_ms},
        gpio={"pin_factory": "mock"}, leds={"kind": "tower"}, mqtt={"brokers": brokers})
    events = []
    svc = Service(settings, printer=events.append, install_signals=False)
    svc.setup()
    runner = threading.Thread(target=svc.run, daemon=True)
    runner.start()
    for ch in ("front-left", "front-right"):
        threading.Thread(target=play, args=(ch,), daemon=True).start()
    svc.gpio.pin("hook").drive_low()              # a call in progress: every rule is live
    time.sleep(3)                                 # warm-up
    cpu0, wall0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    cpu_s, wall_s = time.process_time() - cpu0, time.monotonic() - wall0
    stop.set()
    svc.request_stop()
    runner.join(5)
    svc.shutdown()
    pulse.kill()
    if broker:
        broker.terminate()
    share = 100 * cpu_s / wall_s
    cores = os.cpu_count()
    print(f"| live service, {buffer_ms} ms capture blocks, 16 kHz stereo via PulseAudio null sink, speech on both channels, "
          f"{'MQTT to local mosquitto' if brokers else 'no broker'} | {wall_s:.0f} s | "
          f"{share:.1f} % of one core ({share / cores:.1f} % of {cores} cores) | "
          f"{len(events)} events, {svc.capture.dropped} blocks dropped |")


if __name__ == "__main__":
    window_s = float(sys.argv[1]) if len(sys.argv) > 1 else 40.0
    for block_ms in [int(a) for a in sys.argv[2:]] or [60]:
        main(window_s, block_ms)
