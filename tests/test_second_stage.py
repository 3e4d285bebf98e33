"""The optional neural second stage (`analysis.second_stage = "silero"`, the [silero] extra).

The setting's validation (bad values; "silero" without the extra) runs everywhere. The
decisions need the extra (onnxruntime and the silero-vad wheel's ONNX model): speech at SNR
0 dB under babble and in a crowd in a room is found, music on hold alone starts no utterance,
a crowd in a room is no talking customer (dry babble is: the known limit, xfail), speech
Silero is unsure of is not vetoed, Silero neither holds back the start of speech nor
pushes its end late, noise it does not hear ends an utterance, Silero does not go deaf on
a long noisy call, the agent's echo under the line noise is not the customer, and replay
gives the same events in 30 ms blocks (the live path) as in 1 s blocks, at 8 kHz and at
16 kHz (decimated to Silero's 8 kHz telephone mode).
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_calls import AGENT_PROMPTS, CUSTOMER_PROMPTS, PromptCall

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import bench_corpus as bc  # noqa: E402

from firmware.analysis.neural import EARLY_S
from firmware.config.extras import silero_missing
from firmware.config.profiles import load_profile
from firmware.config.settings import Settings
from firmware.runtime.analyze import analyze_pcm
from firmware.runtime.replay import replay
from firmware.sim import speech as sp
from firmware.sim.wav import read_wav

sp.prompts_dir()  # the prompts are a test dependency: fail loudly (InputError) if missing

MISSING = silero_missing()
needs_extra = pytest.mark.skipif(
    MISSING is not None, reason=f"the [silero] extra is not installed (tools/dev setup installs it): {MISSING}"
)
SILERO = Settings().replace(analysis={"second_stage": "silero"}) if MISSING is None else None
MOH_DIR = Path("/usr/share/asterisk/moh")  # asterisk-moh-opsound-wav (tools/dev APT_PACKAGES)
CUSTOMER_DBFS = -24.0


def _check_config(tmp_path, text, block=()):
    """check-config on a file holding `text`, in a child whose imports of `block` fail as on a
    unit without those packages."""
    cfg = tmp_path / "station.toml"
    cfg.write_text(text)
    code = (
        "import runpy, sys\n"
        f"for m in {list(block)!r}: sys.modules[m] = None\n"
        f"sys.argv = ['headset-station', 'check-config', {str(cfg)!r}]\n"
        "runpy.run_module('firmware.runtime.cli', run_name='__main__')\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("value", ['"maybe"', '"Silero"', "1", "true"])
def test_bad_second_stage_is_a_one_line_config_error(tmp_path, value):
    proc = _check_config(tmp_path, f"[analysis]\nsecond_stage = {value}\n")
    assert proc.returncode == 78, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "analysis.second_stage" in err, err


@pytest.mark.parametrize("absent", ["onnxruntime", "silero_vad"])
def test_silero_without_the_extra_says_which_extra_to_install(tmp_path, absent):
    proc = _check_config(tmp_path, '[analysis]\nsecond_stage = "silero"\n', block=[absent])
    assert proc.returncode == 78, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "analysis.second_stage" in err and "[silero]" in err and absent in err, err


def test_off_is_the_default_and_loads_nothing():
    assert Settings().analysis.second_stage == "off"
    code = (
        "import sys\n"
        "from firmware.config.settings import Settings\n"
        "from firmware.station.pipeline import Pipeline\n"
        "from firmware.config.profiles import load_profile\n"
        "s = Settings(); Pipeline(s, load_profile(s.station.profile), lambda e: None, 0.0)\n"
        "print('onnxruntime' in sys.modules, 'silero_vad' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "False"], out


class Call(PromptCall):
    """The customer channel of a call (the agent silent), with a noise bed, opened by hook off."""

    def __init__(self, seconds, rate_hz=8000):
        super().__init__(seconds, rate_hz, -20.0, CUSTOMER_DBFS)

    def run(self, settings, block_s=1.0):
        tx = sp.to_int16(sp.noise("white", self.n, self.rate_hz, seed=1, level_dbfs=-70.0))
        rx = sp.to_int16(self.tracks["rx"])
        inputs = [(0.5, "hook", "off"), (self.n / self.rate_hz - 1.0, "hook", "on")]
        events = []
        replay(self.scenario(tx, rx, inputs), settings, load_profile("hotline-5s"), events.append, block_s=block_s)
        return events


def _rx_talk_s(events):
    return next(e for e in events if e["type"] == "call.end")["talk_s"]["rx"]


def _customer_talks(c, t):
    """The customer says seven prompts from `t` on, 1.5 s apart."""
    for name in (*CUSTOMER_PROMPTS, "vm-intro", "privacy-prompt"):
        _s, t = c.say("rx", name, t)
        t += 1.5


def _customer_in_babble(rate_hz=8000, snr_db=0.0, noise="babble"):
    """A customer talking, the noise alone first. "babble": six dry talkers summed
    (firmware.sim.speech); "crowd": twelve talkers around the caller, each through its own
    room (tools/bench_corpus.py; 16 kHz only)."""
    c = Call(60.0, rate_hz)
    _customer_talks(c, 6.0)  # babble alone first
    level_dbfs = CUSTOMER_DBFS - snr_db
    if noise == "crowd":
        assert rate_hz == bc.RATE_HZ
        c.add("rx", bc.noise("crowd", c.n, level_dbfs, np.random.default_rng(4)))
    else:
        c.add("rx", sp.noise(noise, c.n, rate_hz, seed=4, level_dbfs=level_dbfs))
    return c


def _covered(segments, span):
    a, b = span
    return sum(max(0.0, min(b, e) - max(a, s)) for s, e, _ in segments) / (b - a)


@needs_extra
@pytest.mark.parametrize(("noise", "rate_hz", "snr_db"), [("babble", 8000, 0.0), ("crowd", bc.RATE_HZ, 5.0)])
def test_speech_under_babble_and_in_a_crowd_is_detected(noise, rate_hz, snr_db):
    """A customer in a crowd: every utterance is found. Dry babble as loud as the speech
    (the analyser alone finds under a fifth of the talk time, and misses most utterances;
    the extra calls that babble speech anyway, see the known limit below); a crowd in a
    room 5 dB under the speech (the analyser alone covers 0.80-0.99 of each utterance, the
    extra 0.94-1.00; at 0 dB it misses one of the seven, tools/bench has the F1)."""
    c = _customer_in_babble(rate_hz, snr_db=snr_db, noise=noise)
    res = analyze_pcm(sp.to_int16(c.tracks["rx"]), c.rate_hz, SILERO, load_profile("hotline-5s"), "rx")
    covered = [round(_covered(res.segments, span), 2) for span in c.spans["rx"]]
    assert min(covered) >= 0.8, covered


@needs_extra
@pytest.mark.xfail(
    strict=True,
    reason="known limit: Silero hears the voices of dry babble (talkers summed without a room) as speech",
)
def test_babble_alone_starts_no_utterance_with_silero():
    c = Call(30.0)
    c.add("rx", sp.noise("babble", c.n, c.rate_hz, seed=1, level_dbfs=CUSTOMER_DBFS))
    assert _rx_talk_s(c.run(SILERO)) == 0.0


def _clean_customer(rate_hz):
    """A customer's seven prompts over a quiet line: (the call, the analyser's own segments,
    the fused ones)."""
    c = Call(40.0, rate_hz)
    _customer_talks(c, 2.0)
    c.add("rx", sp.noise("pink", c.n, rate_hz, seed=3, level_dbfs=-60.0))
    pcm = sp.to_int16(c.tracks["rx"])
    own = analyze_pcm(pcm, rate_hz, Settings(), load_profile("hotline-5s"), "rx").segments
    fused = analyze_pcm(pcm, rate_hz, SILERO, load_profile("hotline-5s"), "rx").segments
    return c, own, fused


def _end_of(segments, t):
    """End of the segment holding time t (None: none does)."""
    return next((e for s, e, _ in segments if s <= t < e), None)


@needs_extra
@pytest.mark.parametrize("rate_hz", [8000, 16000])
def test_silero_does_not_push_the_end_of_speech_late(rate_hz):
    """Silero's probability stays high for about 90 ms after the voice stops; a frame only it
    calls speech keeps the utterance going but does not make its end later (neural.LATE_S).
    On clean speech the fused ends are the analyser's own on most utterances, and all seven
    together no more than 0.25 s later (they were 60-150 ms later on six of the seven, 0.57 s
    in all; the pause rules count from them)."""
    c, own, fused = _clean_customer(rate_hz)
    late = []
    for _start, end in c.spans["rx"]:
        a, b = _end_of(own, end - 0.2), _end_of(fused, end - 0.2)
        assert a is not None and b is not None, (end, own, fused)
        late.append(round(b - a, 3))
    assert sorted(late)[len(late) // 2] <= 0.0 and sum(late) <= 0.25, late


def _start_of(segments, t):
    """Start of the segment holding time t, or starting at most 0.3 s after it (None: none)."""
    return next((s for s, e, _ in segments if s <= t + 0.3 and e > t), None)


@needs_extra
@pytest.mark.parametrize("rate_hz", [8000, 16000])
def test_silero_does_not_hold_back_the_start_of_speech(rate_hz):
    """Out of a pause Silero can stay under its veto for the first frames of a voice the
    analyser already calls speech; once it agrees, the utterance starts where the analyser's
    own evidence began (neural.EARLY_S). On clean speech every fused start is the analyser's
    own, one frame either way (without it one of the seven starts 0.15-0.18 s late), and
    never more than EARLY_S earlier."""
    c, own, fused = _clean_customer(rate_hz)
    early = []
    for start, _end in c.spans["rx"]:
        a, b = _start_of(own, start), _start_of(fused, start)
        assert a is not None and b is not None, (start, own, fused)
        early.append(round(a - b, 3))
    assert all(-0.035 <= d <= EARLY_S for d in early), early


def _fused(track):
    """The fused decision on a tools/bench track: (its segments, the frames they cover)."""
    segments = analyze_pcm(track.pcm, bc.RATE_HZ, SILERO, load_profile("hotline-5s"), "rx").segments
    return segments, bc.segments_to_frames(segments, len(track.truth))


@needs_extra
@pytest.mark.parametrize(
    ("level_dbfs", "noise", "snr_db", "seed"),
    [(-12.0, "office", 5.0, 1093), (-20.0, "babble", 10.0, 1075), (-50.0, "moh", 5.0, 1085)],
)
def test_noise_silero_does_not_hear_ends_the_utterance(level_dbfs, noise, snr_db, seed):
    """Prompts with short gaps on a noisy telephone line (tools/bench's tracks, their seeds).
    Inside an utterance the analyser's weak evidence (a frame near the floor) kept it going
    through the talker's pauses while Silero gave them under 0.2 (neural.py, "Tails"): 10
    utterances found of 13-14, precision 0.73-0.84. Now every pause of the talker ends one
    (13 found), precision 0.84-0.93, recall 0.94-0.99 (0.94-1.00 before)."""
    track = bc.speech_track("human-short", level_dbfs, noise, snr_db, "tel", seconds=60.0, seed=seed)
    segments, found = _fused(track)
    precision, recall = float(track.truth[found].mean()), float(found[track.truth].mean())
    assert len(segments) >= len(bc.runs(track.truth)) - 1, (len(segments), len(bc.runs(track.truth)))
    assert precision >= 0.83 and recall >= 0.9, (precision, recall)


@needs_extra
@pytest.mark.parametrize(("noise", "snr_db", "seed"), [("pink", 5.0, 1261), ("white", 0.0, 1255)])
def test_silero_does_not_go_deaf_on_a_long_noisy_call(noise, snr_db, seed):
    """Silero's recurrent state can drift into one that hears no speech, and stay there
    (neural.py, "State drift"): fast synthetic Mandarin on a noisy telephone line (one of
    tools/bench's tracks, its seed) was found, fused, in 0.09 (pink, SNR 5 dB) and 0.00
    (white, 0 dB) of its speech after the first 20 s with one state. With the state renewed
    in pauses: 0.99 and 0.57 (the rest of the white track is speech Silero is unsure of,
    left to the analyser)."""
    track = bc.speech_track("cmn-fast", -20.0, noise, snr_db, "tel", seconds=60.0, seed=seed)
    _segments, found = _fused(track)
    later = slice(round(20.0 / (bc.FRAME_MS / 1000)), None)
    covered = found[later][track.truth[later]].mean()
    assert covered >= 0.5, round(float(covered), 2)


@needs_extra
def test_a_crowd_in_a_room_alone_is_no_talking_customer():
    """The known limit above is the dry babble's: six talkers' recordings summed, as if each
    spoke into the handset in an anechoic room (the fused decision calls 27-28.5 s of such a
    30 s call speech). Talkers around the caller in a room (tools/bench_corpus.py's crowd:
    twelve voices, each through its own room) are not speech to Silero: in the three of four
    crowds where the analyser alone hears no talker, the extra adds none either. The fourth
    holds a talker near enough for the analyser to hear (3.5 s); the extra finds more of that
    voice (6.9 s, 3.5 s with one Silero state, see neural.py's "State drift"), and over the
    four calls that stays under a tenth of the time."""
    fused, alone = [], []
    for seed in range(1, 5):
        c = Call(30.0, bc.RATE_HZ)
        c.add("rx", bc.noise("crowd", c.n, CUSTOMER_DBFS, np.random.default_rng(seed)))
        fused.append(_rx_talk_s(c.run(SILERO)))
        alone.append(_rx_talk_s(c.run(Settings())))
    assert all(f == 0.0 for f, a in zip(fused, alone, strict=True) if a == 0.0), (fused, alone)
    assert sum(alone) > 0.0 and sum(fused) <= 0.1 * 4 * 30.0, (fused, alone)


def _moh(seconds, rate_hz):
    files = sorted(MOH_DIR.glob("*.wav"))
    assert files, f"no music on hold in {MOH_DIR} (tools/dev setup installs asterisk-moh-opsound-wav)"
    rate, pcm = read_wav(files[0])
    x = sp.resample(pcm.astype(np.float64), rate, rate_hz)
    n = int(seconds * rate_hz)
    return sp.scale_to(np.tile(x, n // len(x) + 1)[:n], CUSTOMER_DBFS, rate_hz, active=False)


@needs_extra
@pytest.mark.parametrize("rate_hz", [8000, 16000])
def test_music_on_hold_alone_starts_no_utterance(rate_hz):
    c = Call(60.0, rate_hz)
    c.add("rx", _moh(60.0, rate_hz))
    ev = c.run(SILERO)
    assert _rx_talk_s(ev) == 0.0


@needs_extra
@pytest.mark.parametrize("rate_hz", [8000, 16000])
def test_replay_is_the_same_in_30_ms_and_1_s_blocks(rate_hz):
    c = _customer_in_babble(rate_hz, snr_db=5.0)
    c.say("rx", AGENT_PROMPTS[0], 55.0)
    live, replayed = c.run(SILERO, block_s=0.03), c.run(SILERO, block_s=1.0)
    assert [dict(e, id=None) for e in live] == [dict(e, id=None) for e in replayed]  # ids are random
    assert _rx_talk_s(live) > 5.0  # the calls held speech, decided by the fused stage


@needs_extra
def test_quiet_fast_speech_on_a_telephone_line_is_not_vetoed():
    """tools/bench's fast synthetic Mandarin at -50 dBFS through the telephone band (its
    corpus track, same seed): Silero gives most of it probabilities of 0.01-0.1, and the
    analyser alone finds it all. The fused decision must find it too (a veto at 0.15 found a
    fifth of it)."""
    track = bc.speech_track("cmn-fast", -50.0, None, None, "tel", seconds=60.0, seed=1247)
    _segments, found = _fused(track)
    recall = float(found[track.truth].mean())
    precision = float(track.truth[found].mean())
    assert recall >= 0.9 and precision >= 0.9, (recall, precision)


@needs_extra
def test_the_agents_echo_under_the_line_noise_is_not_the_customer():
    """tools/bench's silent call with the agent's voice on rx at -25 dB and 200 ms (its corpus
    call, same seed): the echo's tail sits ~7 dB under the line noise, where the echo veto
    does not remove it by level but Silero hears the voice (p 0.99). The customer never
    talks, so no rx speech, and the silent-call script fires."""
    c = bc.call(-25.0, 200, False, 60.0, seed=2)
    holder = Call(len(c.tx) / bc.RATE_HZ, bc.RATE_HZ)  # (for its scenario of the call's tracks)
    events = []
    replay(
        holder.scenario(c.tx, c.rx, [(c.hook_off_t, "hook", "off")]), SILERO, load_profile("hotline-5s"), events.append
    )
    assert _rx_talk_s(events) == 0.0
    assert any(e["type"] == "script.step" and e["script"] == "silent-call" for e in events)
