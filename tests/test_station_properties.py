"""Property test: random hook/mute/ring inputs and random speech, line and tone edges on
both channels never crash the station and keep its invariants (one call.end per
call.start, durations non-negative and consistent, no cue after the call, seq strictly
increasing, t non-decreasing)."""

from fixtures_station import HANGOVER_S, ONSET_S, Harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.analysis.edges import LineChange, SpeechEnd, SpeechStart, ToneDetected

PROFILES = ("hotline-5s", "service-2s", "outbound-10086", "return-visit")

step = st.one_of(
    st.tuples(st.just("hook"), st.sampled_from(["on", "off"])),
    st.tuples(st.just("mute"), st.booleans()),
    st.tuples(st.just("ring"), st.booleans()),
    st.tuples(st.just("speech"), st.sampled_from(["tx", "rx"]), st.floats(-70.0, -5.0)),
    st.tuples(st.just("line"), st.sampled_from(["tx", "rx"]), st.sampled_from(["ok", "silent", "low", "noisy"])),
    st.tuples(
        st.just("tone"),
    ),
    st.tuples(
        st.just("wait"),
    ),
)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    profile=st.sampled_from(PROFILES),
    start_off=st.booleans(),
    start_muted=st.booleans(),
    steps=st.lists(st.tuples(st.floats(0.0, 30.0), step), max_size=40),
)
def test_random_sequences_keep_invariants(profile, start_off, start_muted, steps):
    h = Harness(profile).start(0.0, hook_off=start_off, muted=start_muted)
    s = h.station
    t = 0.0
    open_speech = {}  # channel -> start_t of an utterance whose end is still to come
    for gap_s, item in steps:
        t += gap_s
        kind = item[0]
        if kind in ("hook", "mute", "ring"):
            s.on_input(t, kind, item[1])
        elif kind == "speech":
            ch, level = item[1], item[2]  # toggles: starts an utterance, or ends the open one
            if ch in open_speech:
                start_t = open_speech.pop(ch)
                end_t = max(start_t + 0.03, t - HANGOVER_S)
                t = max(t, end_t + HANGOVER_S)  # detected a hangover after the end; time never goes back
                s.on_edge(SpeechEnd(ch, t, end_t, level, end_t - start_t))
            else:
                open_speech[ch] = t - ONSET_S
                s.on_edge(SpeechStart(ch, t, t - ONSET_S))
        elif kind == "line":
            s.on_edge(LineChange(item[1], t, item[2], -30.0, -50.0, 20.0))
        elif kind == "tone":
            s.on_edge(ToneDetected("rx", t, "busy-cn"))
        else:
            s.advance(t)
    t += 400.0
    s.advance(t)  # every timer (hold limit, scripts, brief cues) runs out
    s.stop(t + 1.0)

    ev = h.events
    seqs = [e["seq"] for e in ev]
    assert all(a < b for a, b in zip(seqs, seqs[1:]))
    ts = [e["t"] for e in ev]
    assert all(a <= b for a, b in zip(ts, ts[1:]))
    starts = h.of("call.start")
    ends = h.of("call.end")
    assert [e["call"] for e in starts] == [e["call"] for e in ends]
    assert len(set(e["call"] for e in starts)) == len(starts)
    for e in ends:
        d = e["duration_s"]
        assert d >= 0
        assert 0 <= e["hold_s"] <= d + 1e-9
        assert 0 <= e["longest_hold_s"] <= e["hold_s"] + 1e-9
        assert 0 <= e["talk_s"]["tx"] <= d + 1e-9 and 0 <= e["talk_s"]["rx"] <= d + 1e-9
        assert 0 <= e["dead_air_s"] <= d + 1e-9
        assert e["hold_count"] >= 0 and e["overtalk_count"] >= 0
    # events of a call carry its id and lie between its start and end
    for a, b in zip(starts, ends):
        inside = [e for e in ev if e["call"] == a["call"]]
        assert all(a["t"] <= e["t"] <= b["t"] for e in inside)
    # outside a call only the station-level cues show; at the next call.start the cue of
    # the previous call is gone
    shown = None
    for e in ev:
        if e["type"] == "cue":
            shown = e["cue"]
            if e["call"] is None:
                assert shown in ("idle", "fault"), e
        elif e["type"] == "call.start":
            assert shown in ("idle", "fault")
    # hold timers are exact: warn and limit at their offsets from the hold's start
    prof = h.profile
    last_hold_t = None
    for e in ev:
        if e["type"] == "hold.start":
            last_hold_t = e["t"]
        elif e["type"] in ("hold.warn", "hold.limit"):
            offset_s = prof.hold_warn_s if e["type"] == "hold.warn" else prof.hold_limit_s
            assert abs(e["t"] - last_hold_t - offset_s) < 1e-3
    # script steps count up by one within a script run
    prev = None
    for e in ev:
        if e["type"] == "script.step":
            assert e["step"] == 1 or (prev and prev["script"] == e["script"] and e["step"] == prev["step"] + 1)
            prev = e
    assert s.state["cue"] == "idle" and s.state["call"] is None
    assert ev[-1]["type"] == "station.offline"
    assert not s.timers._live or all(
        not k.startswith(("hold", "script", "dead_air", "greet", "cue")) for k in s.timers._live
    )
