"""A sound card's DC offset: the analyser meters each channel without it (firmware.analysis.levels
DcOffset), so an offset changes no decision, in any block size, with the gain or the echo on.

Before, an offset of 100 counts (-47 dBFS) made a quiet line `noisy`, and 3000 counts hid
speech at -26 dBFS entirely (its level sat under the offset's).
"""

import numpy as np
import pytest

from firmware.analysis.levels import DC_EVERY_FRAMES, DC_PICK, DcOffset
from firmware.config.profiles import load_profile
from firmware.config.settings import Settings
from firmware.runtime.analyze import analyze_pcm
from firmware.sim import speech as sp

RATE_HZ = 16000
SETTINGS = Settings()
PROFILE = load_profile(SETTINGS.station.profile)
PROMPTS = [(2.0, "vm-nobodyavail"), (10.0, "pls-hold-while-try"), (20.0, "demo-thanks")]


def line(speech_dbfs: float, seconds: float = 30.0) -> np.ndarray:
    """Three prompts at `speech_dbfs` over a quiet pink noise (float, int16 units)."""
    n = int(seconds * RATE_HZ)
    x = sp.noise("pink", n, RATE_HZ, seed=3, level_dbfs=-65.0)
    for start_s, name in PROMPTS:
        p = sp.scale_to(sp.load_prompt(name, RATE_HZ), speech_dbfs, RATE_HZ)
        i = int(start_s * RATE_HZ)
        x[i : i + len(p)] += p
    return x


def decisions(x: np.ndarray, block_s: float = 0.03, settings: Settings = SETTINGS, tx=None):
    a = analyze_pcm(sp.to_int16(x), RATE_HZ, settings, PROFILE, "rx", tx=tx, block_s=block_s)
    return [(round(s, 2), round(e, 2)) for s, e, _ in a.segments], [(c["t"], c["condition"]) for c in a.line], a


@pytest.mark.parametrize("speech_dbfs", [-26.0, -40.0])
@pytest.mark.parametrize("offset", [100, -600, 3000])
def test_an_offset_changes_no_decision(speech_dbfs, offset):
    clean = line(speech_dbfs)
    segments, conditions, _ = decisions(clean)
    assert len(segments) == len(PROMPTS) and [c for _, c in conditions] == ["ok"]
    for block_s in (0.03, 0.96):
        assert decisions(clean + offset, block_s)[:2] == (segments, conditions), block_s


def test_with_the_channel_gain_too():
    settings = SETTINGS.replace(audio={"rx_gain_db": 6.0})
    clean = line(-40.0)
    assert decisions(clean + 2000, 0.03, settings)[:2] == decisions(clean, 0.03, settings)[:2]


def test_an_offset_that_appears_mid_call_is_taken_out_within_seconds():
    clean = line(-40.0)
    stepped = clean.copy()
    stepped[int(6.0 * RATE_HZ) :] += 1500  # the card is re-plugged / its input bias shifts
    segments, conditions, _ = decisions(clean)
    got_segments, got_conditions, _ = decisions(stepped)
    # the step itself reads as a burst until the new offset is steady (about 3 s); the
    # prompts from 10 s on are decided as without it
    assert [s for s in got_segments if s[0] >= 9.0] == [s for s in segments if s[0] >= 9.0]
    assert all(s[0] >= 9.0 or s[1] <= 9.0 for s in got_segments)
    assert got_conditions[-1][1] == "ok"


def test_the_echo_estimate_is_the_same_with_offsets_on_both_channels():
    n = int(30.0 * RATE_HZ)
    agent = np.zeros(n)
    for start_s, name in [(5.0, "vm-intro"), (14.0, "agent-newlocation")]:
        p = sp.scale_to(sp.load_prompt(name, RATE_HZ), -20.0, RATE_HZ)
        agent[int(start_s * RATE_HZ) : int(start_s * RATE_HZ) + len(p)] += p
    d = int(0.04 * RATE_HZ)
    rx = line(-26.0)
    rx[d:] += agent[:-d] * 10 ** (-18.0 / 20)
    tx = agent + sp.noise("white", n, RATE_HZ, seed=5, level_dbfs=-70.0)
    plain = decisions(rx, tx=sp.to_int16(tx))
    offset = decisions(rx - 700, tx=sp.to_int16(tx + 1200))
    assert offset[:2] == plain[:2]
    assert plain[2].echo is not None and offset[2].echo == plain[2].echo


@pytest.mark.parametrize("tone_hz", [450.0, 500.0, 1000.0])  # whole periods in 30 ms and in 0.24 s
def test_a_steady_tone_is_not_an_offset(tone_hz):
    """A frame's mean of a tone depends on the tone's phase at the frame; the frame sampled
    moves within each 0.24 s run, so no tone reads as a steady offset."""
    n = int(20.0 * RATE_HZ)
    t = np.arange(n) / RATE_HZ
    x = sp.to_int16(
        3000.0 * np.sin(2 * np.pi * tone_hz * t + 0.3) + sp.noise("white", n, RATE_HZ, seed=1, level_dbfs=-70)
    )
    frames = x[: n // 480 * 480].reshape(-1, 480)
    dc = DcOffset(480)
    assert dc.offsets(frames, 0) is None and dc.offset == 0
    # an offset under the tone is found, or (while the tone's phase moves the means) none yet:
    # never a wrong one
    assert set(DcOffset(480).offsets(frames + np.int16(40), 0) or [0]) <= {0, 40}


def test_offsets_do_not_depend_on_the_block_size():
    x = sp.to_int16(line(-30.0) + 250)
    frames = x[: len(x) // 480 * 480].reshape(-1, 480)
    whole = DcOffset(480).offsets(frames, 0)
    one, by_one = DcOffset(480), []
    for g in range(len(frames)):
        by_one += one.offsets(frames[g : g + 1], g) or [0]
    assert whole == by_one and abs(whole[-1] - 250) <= 2
    assert sum(DC_PICK) == len(DC_PICK) // DC_EVERY_FRAMES  # one frame in each run is sampled
