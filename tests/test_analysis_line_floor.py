"""The line floor on clean speech: quiet syllables are not a noise, a real noise still is.

The tracks are the ones `tools/bench` scores, built by its own corpus builder
(tools/bench_corpus.py, same sources and seeds): an espeak-ng Mandarin paragraph and long
Asterisk prompts without a lead-in, over digital silence or a quiet line, run through the
`analyze` pipeline. Before the line floor's depth check, their quiet syllables and word
tails (missed by the speech thresholds) were taken for the line's noise, and the clear line
was called `noisy` (up to 10% of the time), which tells the agent to ask the customer to
call again from another phone.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from firmware.config.profiles import load_profile
from firmware.config.settings import Settings
from firmware.runtime.analyze import analyze_pcm
from firmware.sim import speech as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import bench_corpus as bc  # noqa: E402

if not bc.espeak_available():  # a test dependency (tools/dev APT_PACKAGES): fail, do not skip
    raise RuntimeError("espeak-ng is not installed (tools/dev setup installs it)")
sp.prompts_dir()

SETTINGS = Settings()
PROFILE = load_profile("hotline-5s")
TRACK_S = 60.0


def conditions(pcm):
    res = analyze_pcm(pcm, bc.RATE_HZ, SETTINGS, PROFILE, "rx")
    return res.line, res.duration_s


def noisy_share(line, duration_s):
    held, cond, t_prev = 0.0, "silent", 0.0
    for c in line + [{"t": duration_s, "condition": None}]:
        if cond == "noisy":
            held += c["t"] - t_prev
        cond, t_prev = c["condition"], c["t"]
    return held / duration_s


# (source, level dBFS, band, seed of tools/bench's full run, added line noise dBFS or None)
CLEAN = [
    ("cmn", -12.0, "wide", 1192, None),  # was noisy 10.0% (floor -31.5 dBFS from syllables)
    ("cmn", -50.0, "wide", 1198, None),  # was 8.4% (floor -56.8 dBFS, SNR 4 dB)
    ("human-long", -12.0, "tel", 1001, None),  # was 3.2% (word tails, floor -40.4 dBFS)
    ("human-long", -50.0, "tel", 1007, None),  # 0% before too: the -50 dBFS human-long guard
    ("cmn", -12.0, "wide", 1192, -72.0),  # over a quiet line (pink noise): was 10.0%
]


@pytest.mark.parametrize(
    "source,level_dbfs,band,seed,line_dbfs", CLEAN, ids=lambda v: str(v) if not isinstance(v, int) else ""
)
def test_clean_speech_is_never_a_noisy_line(source, level_dbfs, band, seed, line_dbfs):
    track = bc.speech_track(source, level_dbfs, None, None, band, TRACK_S, seed)
    pcm = track.pcm
    if line_dbfs is not None:
        line_noise = sp.noise("pink", len(pcm), bc.RATE_HZ, seed=seed, level_dbfs=line_dbfs)
        pcm = sp.to_int16(pcm.astype(np.float64) + line_noise)
    line, duration_s = conditions(pcm)
    assert [c for c in line if c["condition"] == "noisy"] == [], line
    assert noisy_share(line, duration_s) == 0.0
    assert {"ok", "low"} & {c["condition"] for c in line}, line  # the speech was found


@pytest.mark.parametrize("noise", ["babble", "pink"])
def test_the_same_talker_under_noise_at_snr_5_is_a_noisy_line(noise):
    """The depth check must not hold the floor under a real noise: -20 dBFS speech at SNR
    5 dB (below the profile's snr_db of 10) is `noisy` most of the call."""
    track = bc.speech_track("cmn", -20.0, noise, 5.0, "wide", TRACK_S, seed=7)
    line, duration_s = conditions(track.pcm)
    assert noisy_share(line, duration_s) > 0.8, line


def test_white_noise_rising_under_the_talker_makes_the_line_noisy():
    """White noise from -70 to -40 dBFS (above the profile's noise_dbfs of -45) at 20 s
    under the Mandarin talker: `noisy` after the rise, never before."""
    rise_s = 20.0
    rng = np.random.default_rng(2)
    clean = bc.speech("cmn-fast", 40.0, rng)
    clean *= 10.0 ** ((-20.0 - bc.active_level_dbfs(clean, bc.RATE_HZ)) / 20.0)
    noise = sp.noise("white", len(clean), bc.RATE_HZ, seed=12, level_dbfs=-40.0)
    noise[: int(rise_s * bc.RATE_HZ)] *= 10.0 ** (-30.0 / 20.0)
    line, _ = conditions(sp.to_int16(clean + noise))
    noisy = [c["t"] for c in line if c["condition"] == "noisy"]
    assert noisy and rise_s < noisy[0] <= rise_s + 6.0, line
