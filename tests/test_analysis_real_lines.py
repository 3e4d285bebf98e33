"""Speech decisions on real-line conditions, as replay scenarios with real recorded speech.

The agent's voice back on the customer channel (headset sidetone, hybrid echo), long talkers
without a lead-in, speech under loud babble, and a badly wired receive tap in selftest. The
audio is built here from the Asterisk prompts (firmware.sim.speech); the truth (where each
prompt's speech is) comes from the clean prompts.
"""

import subprocess
import sys

import numpy as np
import pytest
from fixtures_calls import AGENT_PROMPTS, CUSTOMER_PROMPTS, PromptCall

from firmware.config.profiles import load_profile
from firmware.config.settings import Settings
from firmware.runtime.replay import replay
from firmware.sim import speech as sp
from firmware.station.pipeline import echo_telemetry
from firmware.tech.selftest import run_selftest

sp.prompts_dir()  # the prompts are a test dependency: fail loudly (InputError) if missing

RATE_HZ = 8000
SETTINGS = Settings()
TOL_S = SETTINGS.audio.frame_ms / 1000 + SETTINGS.analysis.hangover_ms / 1000
AGENT_DBFS, CUSTOMER_DBFS = -20.0, -24.0
LINE_NOISE_DBFS = -62.0
# (coupling dB, delay ms): headset sidetone, and hybrid echo on an analogue line
COUPLINGS = [(-10.0, 0), (-18.0, 40)]


class Call(PromptCall):
    """Two channels built by placing prompts; rx also carries tx at a coupling and delay."""

    def __init__(self, seconds, coupling_db=None, delay_ms=0):
        super().__init__(seconds, RATE_HZ, AGENT_DBFS, CUSTOMER_DBFS)
        self.inputs = [(0.5, "hook", "off")]
        self.coupling_db, self.delay_ms = coupling_db, delay_ms

    def channels(self):
        tx = self.tracks["tx"] + sp.noise("white", self.n, RATE_HZ, seed=1, level_dbfs=-70.0)
        rx = self.tracks["rx"] + sp.noise("pink", self.n, RATE_HZ, seed=2, level_dbfs=LINE_NOISE_DBFS)
        if self.coupling_db is not None:
            d = int(self.delay_ms * RATE_HZ / 1000)
            rx[d:] += self.tracks["tx"][: self.n - d] * 10 ** (self.coupling_db / 20)
        return sp.to_int16(tx), sp.to_int16(rx)

    def run(self, profile="hotline-5s", settings=SETTINGS, hangup_s=None):
        inputs = self.inputs + ([(hangup_s, "hook", "on")] if hangup_s is not None else [])
        events = []
        self.pipeline = replay(self.scenario(*self.channels(), inputs), settings, load_profile(profile), events.append)
        return events


def of(events, type_, **match):
    return [e for e in events if e["type"] == type_ and all(e.get(k) == v for k, v in match.items())]


def talk_s(spans):
    return sum(b - a for a, b in spans)


@pytest.mark.parametrize("coupling_db,delay_ms", COUPLINGS)
def test_agent_echo_with_a_silent_customer_is_not_customer_speech(coupling_db, delay_ms):
    """Only the agent (and its echo) speaks: no overtalk, no customer talk time, and the
    silent-call script still runs step by step on time."""
    _check_silent_customer(coupling_db, delay_ms, AGENT_PROMPTS)


@pytest.mark.parametrize("coupling_db", [-6.0, -18.0])
def test_late_echo_of_the_first_words_is_not_the_customer(coupling_db):
    """Hybrid echo 200 ms late: the agent's first words come back on rx before the estimator
    has seen a whole delay range of agent speech. They are still the agent's (the old
    estimator settled on a wrong short lag from the lags it had seen, took ~0.2 s of echo
    for the customer, and that ended the silent-call script), whichever prompt opens."""
    for k in range(len(AGENT_PROMPTS)):
        _check_silent_customer(coupling_db, 200, AGENT_PROMPTS[k:] + AGENT_PROMPTS[:k])


def _check_silent_customer(coupling_db, delay_ms, prompts):
    prof = load_profile("hotline-5s")
    steps = prof.scripts["silent-call"]
    c = Call(60.0, coupling_db, delay_ms)
    _s, end = c.say("tx", prompts[0], 1.0)
    expected = []
    for k in range(len(steps)):
        due = end + prof.pause_s
        expected.append(due)
        if k < len(steps) - 1:
            _s, end = c.say("tx", prompts[k + 1], due + 1.0)
    ev = c.run(hangup_s=expected[-1] + 1.0)
    assert of(ev, "overtalk") == []
    got = of(ev, "script.step", script="silent-call")
    assert [e["step"] for e in got] == list(range(1, len(steps) + 1)), [e["type"] for e in ev]
    for e, due in zip(got, expected):
        assert e["t"] == pytest.approx(due, abs=TOL_S), (e, due)
    end_ev = of(ev, "call.end")[0]
    assert end_ev["talk_s"]["rx"] <= 0.3 and end_ev["overtalk_count"] == 0, end_ev
    # The coupling the analyser settled on, as telemetry reports it.
    tel = echo_telemetry(c.pipeline)
    assert tel["echo_coupling_db"] == pytest.approx(coupling_db, abs=3.0), tel
    assert abs(tel["echo_delay_ms"] - delay_ms) <= 35, tel


@pytest.mark.parametrize("coupling_db,delay_ms", COUPLINGS)
def test_talking_customer_over_agent_echo(coupling_db, delay_ms):
    """Turns with the agent's echo on the customer channel: the customer's talk time is
    the customer's; the one real cut-in (the agent talking over the customer) is the only
    overtalk."""
    c = Call(48.0, coupling_db, delay_ms)
    t = 1.0
    for k in range(4):
        _s, e = c.say("tx", AGENT_PROMPTS[k], t)
        _s, t = c.say("rx", CUSTOMER_PROMPTS[k], e + 0.8)
        t += 0.8
    cs, ce = c.say("rx", "something-terribly-wrong", t)  # the customer explains...
    c.say("tx", "vm-leavemsg", cs + 2.0)  # ...and the agent cuts in after 2 s
    ev = c.run(hangup_s=47.0)
    ot = of(ev, "overtalk")
    assert len(ot) == 1 and ot[0]["t"] == pytest.approx(cs + 2.0 + TOL_S, abs=TOL_S + 0.1), ot
    rx_truth = talk_s(c.spans["rx"])
    rx_talk = of(ev, "call.end")[0]["talk_s"]["rx"]
    assert rx_talk == pytest.approx(rx_truth, rel=0.1), (rx_talk, rx_truth)


def test_a_coupling_that_changes_is_followed():
    """The agent moves the microphone: the echo goes from -25 dB to -10 dB 10 s into the call. The
    estimate follows within seconds and the louder echo stops reading as the customer."""
    c = Call(50.0)
    t = 1.0
    for k in range(8):
        _s, t = c.say("tx", AGENT_PROMPTS[k % len(AGENT_PROMPTS)], t)
        t += 0.6
    tx_clean = c.tracks["tx"].copy()
    d = int(0.04 * RATE_HZ)
    half = int(10.0 * RATE_HZ)
    echo = np.zeros(c.n)
    echo[d:] = tx_clean[: c.n - d]
    echo[:half] *= 10 ** (-25.0 / 20)
    echo[half:] *= 10 ** (-10.0 / 20)
    c.add("rx", echo)
    ev = c.run(hangup_s=49.0)
    tel = echo_telemetry(c.pipeline)
    assert tel["echo_coupling_db"] == pytest.approx(-10.0, abs=3.0), tel
    assert of(ev, "call.end")[0]["talk_s"]["rx"] <= 4.0  # a few seconds while it adapts, at most
    assert of(ev, "overtalk") == []


def test_echo_analysis_can_be_turned_off():
    c = Call(20.0, -10.0, 0)
    c.say("tx", AGENT_PROMPTS[0], 1.0)
    c.say("tx", AGENT_PROMPTS[1], 6.0)
    off = SETTINGS.replace(analysis={"echo": "off"})
    ev = c.run(settings=off, hangup_s=19.0)
    assert of(ev, "call.end")[0]["talk_s"]["rx"] > 3.0  # the echo is taken for the customer
    assert echo_telemetry(c.pipeline) == {"echo_coupling_db": None, "echo_delay_ms": None}


def test_sustained_clean_speech_without_lead_in_is_never_a_noisy_line():
    """20 s of a long prompt at -12 dBFS from the first sample: a clear line, not `noisy`."""
    c = Call(21.0)
    x = np.asarray(sp.load_prompt("demo-instruct", RATE_HZ))[: 20 * RATE_HZ]
    c.add("rx", sp.scale_to(x, -12.0, RATE_HZ))
    c.inputs = [(0.0, "hook", "off")]
    ev = c.run()
    rx_lines = [e["condition"] for e in of(ev, "line") if e["channel"] == "rx"]
    assert "noisy" not in rx_lines and "ok" in rx_lines, rx_lines
    assert of(ev, "script.step", script="noisy-line") == []


def test_noise_rising_mid_call_makes_the_line_noisy_within_seconds():
    c = Call(40.0)
    x = np.asarray(sp.load_prompt("demo-instruct", RATE_HZ))[: 38 * RATE_HZ]
    c.add("rx", sp.scale_to(x, -20.0, RATE_HZ), 1.0)
    noise = sp.noise("pink", c.n, RATE_HZ, seed=5, level_dbfs=-30.0)
    noise[: 20 * RATE_HZ] = 0.0
    c.add("rx", noise)
    ev = c.run()
    noisy = [e["t"] for e in of(ev, "line", condition="noisy") if e["channel"] == "rx"]
    assert noisy and 20.0 < noisy[0] <= 26.0, noisy


BABBLE_CUSTOMER = CUSTOMER_PROMPTS + ("vm-intro", "privacy-prompt", "dir-welcome")


def test_speech_under_babble_at_snr_5_is_detected_and_babble_alone_is_not():
    """A customer in a crowd: babble at 5 dB under the speech. The customer's talk time is
    found (the old margins missed a fifth of it), and babble alone starts nothing."""
    c = Call(60.0)
    t = 8.0  # 8 s of babble alone first
    for name in BABBLE_CUSTOMER:
        _s, t = c.say("rx", name, t)
        t += 1.5
    c.add("rx", sp.noise("babble", c.n, RATE_HZ, seed=4, level_dbfs=CUSTOMER_DBFS - 5.0))
    ev = c.run(hangup_s=59.0)
    truth = talk_s(c.spans["rx"])
    rx_talk = of(ev, "call.end")[0]["talk_s"]["rx"]
    assert 0.85 * truth <= rx_talk <= 1.15 * truth, (rx_talk, truth)

    alone = Call(45.0)
    alone.add("rx", sp.noise("babble", alone.n, RATE_HZ, seed=4, level_dbfs=CUSTOMER_DBFS - 5.0))
    ev = alone.run(hangup_s=44.0)
    assert of(ev, "call.end")[0]["talk_s"]["rx"] == 0.0


def _wav(tmp_path, name, x):
    return str(sp.write(tmp_path / name, x, RATE_HZ))


def test_selftest_reports_a_receive_tap_wired_to_the_microphone(tmp_path):
    x = sp.speech_track(AGENT_PROMPTS[:2], 0.3, RATE_HZ, -20.0, lead_s=0.2)[: 3 * RATE_HZ + 800]
    y = sp.speech_track(CUSTOMER_PROMPTS[:2], 0.3, RATE_HZ, -24.0, lead_s=0.4)[: len(x)]
    for rx, status in ((x, "FAIL"), (y, "PASS")):
        s = Settings().replace(
            audio={
                "backend": "wav",
                "rate_hz": RATE_HZ,
                "wav_tx": _wav(tmp_path, "tx.wav", x),
                "wav_rx": _wav(tmp_path, "rx.wav", rx),
            }
        )
        lines = []
        run_selftest(s, out=lines.append, simulate=True, interactive=False)
        echo = [line for line in lines if " echo:" in line]
        assert len(echo) == 1 and echo[0].startswith(f"{status} echo:"), lines
        if status == "FAIL":
            assert "+0.0 dB, 0 ms" in echo[0] and "receive tap" in echo[0], echo


@pytest.mark.parametrize("value", ['"maybe"', "1", "nan"])
def test_bad_echo_setting_is_a_one_line_config_error(tmp_path, value):
    cfg = tmp_path / "station.toml"
    cfg.write_text(f"[analysis]\necho = {value}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "firmware.runtime.cli", "check-config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 78, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "analysis.echo" in err, err
