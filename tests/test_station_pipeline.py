"""Scenario tests through the full pipeline (firmware.replay + ChannelAnalyzer) with real
recorded speech (the Asterisk prompts, hal.speech): per profile the whole silent-call
script, the hold warning and limit, and a clean ordinary call that fires nothing.

Expected instants come from the truth of the constructed audio (where each prompt's
speech really ends, by its energy envelope). Tolerance: one analysis frame plus the
configured VAD hangover (the analyser decides where an utterance ends to within that);
input-driven timers (hold) are exact to 1 ms.
"""

import pytest
from fixtures_calls import AGENT_PROMPTS, CUSTOMER_PROMPTS, PromptCall

from firmware.config.profiles import load_profile
from firmware.config.settings import Settings
from firmware.runtime.replay import replay
from firmware.sim import speech as sp

sp.prompts_dir()  # the prompts are a test dependency: fail loudly (InputError) if missing

RATE_HZ = 8000
SETTINGS = Settings()
FRAME_S = SETTINGS.audio.frame_ms / 1000
TOL_S = FRAME_S + SETTINGS.analysis.hangover_ms / 1000
EXACT_S = 1e-3
AGENT_DBFS, CUSTOMER_DBFS = -22.0, -26.0
PROFILES = ("hotline-5s", "service-2s", "outbound-10086", "return-visit")


class Call(PromptCall):
    """Builds the two channels by placing prompts; records each prompt's true speech span."""

    def __init__(self, seconds):
        super().__init__(seconds, RATE_HZ, AGENT_DBFS, CUSTOMER_DBFS)
        self.inputs = []

    def run(self, profile, start="2026-11-23T10:45:00+08:00"):
        events = []
        scen = self.scenario(sp.to_int16(self.tracks["tx"]), sp.to_int16(self.tracks["rx"]), self.inputs, start)
        replay(scen, SETTINGS, load_profile(profile), events.append)
        return events


def of(events, type_):
    return [e for e in events if e["type"] == type_]


@pytest.mark.parametrize("profile", PROFILES)
def test_silent_call_script_with_real_speech(profile):
    prof = load_profile(profile)
    steps = prof.scripts["silent-call"]
    c = Call(60.0)
    c.inputs.append((1.0, "hook", "off"))
    _s, end = c.say("tx", AGENT_PROMPTS[0], 1.3)  # the greeting
    expected = []
    for k in range(len(steps)):
        due = end + prof.pause_s
        expected.append(due)
        if k < len(steps) - 1:  # the agent says the step 1 s after its cue
            _s, end = c.say("tx", AGENT_PROMPTS[k + 1], due + 1.0)
    c.inputs.append((expected[-1] + 1.0, "hook", "on"))
    ev = c.run(profile)
    got = of(ev, "script.step")
    assert [e["step"] for e in got] == list(range(1, len(steps) + 1))
    assert all(e["script"] == "silent-call" for e in got) and got[-1]["final"]
    for e, due in zip(got, expected):
        assert e["t"] == pytest.approx(due, abs=TOL_S), (e, due)
    assert of(ev, "rule.violation") == []
    assert of(ev, "cue")[-1]["cue"] == "idle"


@pytest.mark.parametrize("profile", PROFILES)
def test_hold_warning_and_limit_with_real_speech(profile):
    prof = load_profile(profile)
    c = Call(95.0)
    c.inputs.append((1.0, "hook", "off"))
    _s, e0 = c.say("tx", "dir-welcome", 1.3)
    _s, e1 = c.say("rx", "something-terribly-wrong", e0 + 0.8)
    _s, e2 = c.say("tx", "pls-hold-while-try", e1 + 0.7)
    hold_t = e2 + 0.5
    c.inputs += [(hold_t, "mute", True), (hold_t + 65.0, "mute", False)]
    _s, e3 = c.say("tx", "vm-leavemsg", hold_t + 65.5)  # "thank you for waiting"
    _s, e4 = c.say("rx", "conf-onlyperson", e3 + 0.8)
    c.inputs.append((e4 + prof.hangup_pause_s + 2.0, "hook", "on"))
    ev = c.run(profile)
    assert of(ev, "hold.start")[0]["t"] == pytest.approx(hold_t, abs=EXACT_S)
    assert of(ev, "hold.warn")[0]["t"] == pytest.approx(hold_t + prof.hold_warn_s, abs=EXACT_S)
    assert of(ev, "hold.limit")[0]["t"] == pytest.approx(hold_t + prof.hold_limit_s, abs=EXACT_S)
    assert of(ev, "hold.end")[0]["duration_s"] == pytest.approx(65.0, abs=EXACT_S)
    cues = [(e["t"], e["cue"]) for e in of(ev, "cue")]
    assert (pytest.approx(hold_t + prof.hold_warn_s, abs=EXACT_S), "hold_warn") in cues
    assert (pytest.approx(hold_t + prof.hold_limit_s, abs=EXACT_S), "hold_over") in cues
    assert (pytest.approx(hold_t + 65.0, abs=EXACT_S), "thank_waiting") in cues
    violations = [e["rule"] for e in of(ev, "rule.violation")]
    expected = ["hold-limit"] + (["hangup-pause"] if prof.wait_customer_hangup else [])
    assert violations == expected
    end = of(ev, "call.end")[0]
    assert end["hold_s"] == pytest.approx(65.0, abs=EXACT_S) and end["violations"] == expected


@pytest.mark.parametrize("profile", PROFILES)
def test_clean_ordinary_call_fires_nothing(profile):
    prof = load_profile(profile)
    c = Call(45.0)
    c.inputs += [
        (0.0, "ring", True),
        (1.0, "ring", False),
        (4.0, "ring", True),
        (4.6, "hook", "off"),
        (4.6, "ring", False),
    ]
    t = 4.9
    spans = []
    for k in range(4):  # four turns each, no overlap
        s, e = c.say("tx", AGENT_PROMPTS[k], t)
        spans.append((s, e))
        s, e = c.say("rx", CUSTOMER_PROMPTS[k], e + 0.8)
        spans.append((s, e))
        t = e + 0.9
    if prof.wait_customer_hangup:  # the customer hangs up first
        c.add("rx", sp.tone([450.0], (0.35, 0.35), 4.0, RATE_HZ, -20.0), t + 1.0)
        hook_on_t = t + 5.5
    else:
        hook_on_t = t + prof.hangup_pause_s + 0.5
    c.inputs.append((hook_on_t, "hook", "on"))
    ev = c.run(profile)
    start = of(ev, "call.start")[0]
    assert start["rings"] == 2
    for type_ in ("rule.violation", "script.step", "overtalk", "dead_air", "agent.loud", "hold.start"):
        assert of(ev, type_) == [], type_
    if prof.wait_customer_hangup:
        assert len(of(ev, "farend.disconnect")) == 1
    end = of(ev, "call.end")[0]
    assert end["violations"] == [] and end["overtalk_count"] == 0 and end["dead_air_s"] == 0
    tx_truth = sum(e - s for s, e in spans[0::2])
    assert end["talk_s"]["tx"] == pytest.approx(tx_truth, abs=4 * TOL_S + 0.5)
    assert of(ev, "cue")[-1]["cue"] == "idle"


@pytest.mark.parametrize("profile", PROFILES)
def test_low_volume_script_with_real_speech(profile):
    """A customer far below low_dbfs: step 1 once their utterance has ended (detected a
    hangover later), then each step pause_s after the agent's answer."""
    prof = load_profile(profile)
    steps = prof.scripts["low-volume"]
    c = Call(60.0)
    c.inputs.append((1.0, "hook", "off"))
    _s, e0 = c.say("tx", AGENT_PROMPTS[0], 1.3)
    _s, rx_end = c.say("rx", "something-terribly-wrong", e0 + 0.8, level_dbfs=-55.0)
    due = rx_end + SETTINGS.analysis.hangover_ms / 1000
    expected = [due]
    for k in range(1, len(steps)):
        _s, end = c.say("tx", AGENT_PROMPTS[k], due + 1.0)
        due = end + prof.pause_s
        expected.append(due)
    c.inputs.append((expected[-1] + 1.0, "hook", "on"))
    ev = c.run(profile)
    got = of(ev, "script.step")
    assert [(e["script"], e["step"]) for e in got] == [("low-volume", k) for k in range(1, len(steps) + 1)]
    for e, due in zip(got, expected):
        assert e["t"] == pytest.approx(due, abs=TOL_S), (e, due)
    assert [e["condition"] for e in of(ev, "line") if e["channel"] == "rx"][:1] == ["low"]
    assert of(ev, "rule.violation") == []


@pytest.mark.parametrize(
    "start,outside",
    [
        ("2026-11-23T13:00:00+08:00", True),  # lunch: outside
        ("2026-11-23T07:30:00+00:00", True),  # 07:30 local
        ("2026-11-23T15:10:00-05:00", False),
    ],
)  # 15:10 local
def test_calling_hours_use_the_scenario_start_offset(start, outside):
    c = Call(10.0)
    c.inputs += [(1.0, "hook", "off"), (9.0, "hook", "on")]
    ev = c.run("return-visit", start=start)
    violations = [e["rule"] for e in of(ev, "rule.violation")]
    assert ("calling-hours" in violations) == outside
    assert any(e["cue"] == "outside_hours" for e in of(ev, "cue")) == outside


@pytest.mark.parametrize("profile", PROFILES)
def test_noisy_line_script_with_real_noise(profile):
    """Pink noise on the customer's line: noisy-line's first step when the line turns
    noisy, the next pause_s after the agent's answer, whatever the rx VAD makes of the noise."""
    prof = load_profile(profile)
    n_steps = len(prof.scripts["noisy-line"])
    c = Call(40.0)
    c.inputs.append((1.0, "hook", "off"))
    _s, e0 = c.say("tx", AGENT_PROMPTS[0], 1.3)
    c.add("rx", sp.noise("pink", c.n, RATE_HZ, seed=3, level_dbfs=-35.0)[: c.n - int((e0 + 0.5) * RATE_HZ)], e0 + 0.5)
    first = c.run(profile)
    noisy_t = [e["t"] for e in of(first, "line") if e["channel"] == "rx" and e["condition"] == "noisy"][0]
    expected = [noisy_t]
    _s, end = c.say("tx", AGENT_PROMPTS[1], noisy_t + 1.0)  # the agent says step 1
    expected.append(end + prof.pause_s)
    while len(expected) < n_steps:  # then silent: one step per pause_s
        expected.append(expected[-1] + prof.pause_s)
    c.inputs.append((expected[-1] + 1.0, "hook", "on"))
    ev = c.run(profile)
    got = [e for e in of(ev, "script.step") if e["script"] == "noisy-line"]
    assert [e["step"] for e in got] == list(range(1, n_steps + 1)) and got[-1]["final"]
    for e, due in zip(got, expected):
        assert e["t"] == pytest.approx(due, abs=TOL_S), (e, due)
    assert of(ev, "rule.violation") == []
