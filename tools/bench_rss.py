"""Peak RSS of a process that runs the station pipeline the way the service does, for tools/bench.

    python tools/bench_rss.py TX.wav RX.wav [off|silero]   -> prints the peak RSS in KiB (VmHWM)
                                           (silero: analysis.second_stage, the optional extra)

It imports only what the service's audio path imports (the pipeline, settings, profiles),
streams both WAVs through `Pipeline.feed` in the service's capture blocks (audio.buffer_ms)
with a call open, and drops the events as the service hands them to the outbox.
"""

from __future__ import annotations

import resource
import sys
import wave
from pathlib import Path

import numpy as np

from firmware.config.profiles import load_profile
from firmware.config.settings import load_settings
from firmware.station.pipeline import Pipeline


def peak_rss_kib() -> int:
    """Peak RSS of this process (/proc VmHWM: this program's own memory map; getrusage's
    ru_maxrss would also count the parent's memory at fork time on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(tx_path: str, rx_path: str, second_stage: str = "off") -> int:
    settings = load_settings(None)
    profile = load_profile(settings.station.profile)
    with wave.open(tx_path) as wt, wave.open(rx_path) as wr:
        rate_hz = wt.getframerate()
        settings = settings.replace(audio={"rate_hz": rate_hz}, analysis={"second_stage": second_stage})
        block = rate_hz * settings.audio.buffer_ms // 1000
        pipe = Pipeline(settings, profile, lambda event: None, 0.0)
        pipe.start(0.0, hook_off=True)
        t0 = 0.0
        while True:
            tx = np.frombuffer(wt.readframes(block), dtype="<i2")
            rx = np.frombuffer(wr.readframes(block), dtype="<i2")
            if not len(tx):
                break
            pipe.feed(t0, tx, rx, ())
            t0 += len(tx) / rate_hz
        pipe.stop(t0)
    print(peak_rss_kib())
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
