"""The live fleet model after crashes: offline stations never show a running call or hold,
retained messages in any order give no ghost, a birth resolves it; names, durations, cue words."""

from __future__ import annotations

import itertools
import json

import pytest

from headset_fleet.cue_words import CUE_WORDS, cue_words
from headset_fleet.monitor import fold, render, site_summary, table_rows

T0 = 1795305600.0  # 2026-11-22T00:00:00Z


def j(obj) -> bytes:
    return json.dumps(obj).encode()


def iso(ts_s: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts_s, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


BIRTH = {"status": "online", "bdSeq": 3, "boot_id": "boot-a", "reason": "birth", "ts": iso(T0), "desk": "Desk 7"}
WILL = {"status": "offline", "bdSeq": 3, "boot_id": "boot-a", "reason": "will", "ts": iso(T0)}
ON_HOLD = {
    "call": "st-1-5",
    "phase": "conversation",
    "on_hold": True,
    "hold_s": 30.0,
    "cue": "hold",
    "line": {"rx": "ok", "tx": "ok"},
    "faults": {},
}


def row(fleet, now_s, station="st-1"):
    return next(r for r in table_rows(fleet, now_s) if r["station"] == station)


def test_will_mid_hold_greys_the_station_and_stops_every_timer():
    fleet: dict = {}
    fold(fleet, "hs/sh/st-1/status", j(BIRTH), T0 + 1)
    fold(fleet, "hs/sh/st-1/event", j({"type": "call.start", "call": "st-1-5", "ts": iso(T0 + 10)}), T0 + 10)
    fold(fleet, "hs/sh/st-1/event", j({"type": "hold.start", "call": "st-1-5", "ts": iso(T0 + 20)}), T0 + 20)
    r = row(fleet, T0 + 50)
    assert r["on_call"] and r["call_s"] == pytest.approx(40) and r["on_hold"] and r["hold_s"] == pytest.approx(30)

    fold(fleet, "hs/sh/st-1/status", j(WILL), T0 + 51)  # power cut: the broker publishes the will
    for now in (T0 + 52, T0 + 120, T0 + 3600):
        r = row(fleet, now)
        assert r["status"] == "offline" and not r["online"]
        assert not r["on_call"] and not r["on_hold"] and r["hold_s"] == 0 and r["call_s"] is None
        assert r["hold_since_s"] is None and r["call_since_s"] is None
        assert r["was_on_call"] and r["was_on_hold"]  # the last known state, for the greyed row
        assert r["status_since_s"] == T0 + 51 and r["since_exact"]
    summary = site_summary(fleet.values(), T0 + 3600)[0]
    assert summary["on_call"] == 0 and summary["on_hold"] == 0 and summary["over_limit"] == 0
    assert summary["offline"] == 1


@pytest.mark.parametrize("order", list(itertools.permutations(["status", "state", "birth"])))
def test_a_new_viewer_reading_retained_messages_in_any_order_shows_no_ghost(order):
    """A viewer started after the crash gets the retained will and the retained mid-hold state
    (and perhaps a birth record first, if it saw the station earlier): never a live hold."""
    fleet: dict = {}
    messages = {
        "status": ("hs/sh/st-1/status", WILL),
        "state": ("hs/sh/st-1/state", ON_HOLD),
        "birth": ("hs/sh/st-1/status", BIRTH),
    }
    if order.index("birth") > order.index("status"):
        order = tuple(o for o in order if o != "birth")  # a birth after the will would be a comeback
    for name in order:
        topic, payload = messages[name]
        fold(fleet, topic, j(payload), T0 + 500, retained=True)
    r = row(fleet, T0 + 560)
    assert r["status"] == "offline" and not r["on_hold"] and not r["on_call"] and r["hold_s"] == 0
    assert r["was_on_hold"] and not r["since_exact"]  # a retained will does not say when it died


def test_a_station_that_comes_back_resolves_the_ghost():
    fleet: dict = {}
    fold(fleet, "hs/sh/st-1/status", j(BIRTH), T0 + 1)
    fold(fleet, "hs/sh/st-1/state", j(ON_HOLD), T0 + 40)
    fold(fleet, "hs/sh/st-1/status", j(WILL), T0 + 41)
    reborn = dict(BIRTH, bdSeq=4, boot_id="boot-b", ts=iso(T0 + 90))
    fold(fleet, "hs/sh/st-1/status", j(reborn), T0 + 90)
    r = row(fleet, T0 + 91)
    assert r["online"] and not r["on_call"] and not r["on_hold"] and not r["was_on_hold"]
    assert r["status_since_s"] == pytest.approx(T0 + 90)
    # The station's outbox then drains the backlog of the outage: it is history, not the live view.
    fold(fleet, "hs/sh/st-1/event", j({"type": "hold.start", "call": "st-1-5", "ts": iso(T0 + 35)}), T0 + 92)
    assert not row(fleet, T0 + 93)["on_hold"]
    # ... and the late will of the old connection is ignored.
    fold(fleet, "hs/sh/st-1/status", j(WILL), T0 + 94)
    assert row(fleet, T0 + 95)["online"]


def test_state_timestamps_give_the_station_s_own_timers():
    fleet: dict = {}
    fold(fleet, "hs/sh/st-1/status", j(BIRTH), T0)
    state = dict(ON_HOLD, ts=iso(T0 + 100), call_s=70.0, agent="Li Na")
    fold(fleet, "hs/sh/st-1/state", j(state), T0 + 400)  # read late (a new viewer): same timers
    r = row(fleet, T0 + 400)
    assert r["hold_s"] == pytest.approx(330) and r["call_s"] == pytest.approx(370)
    assert r["name"] == "Desk 7" and r["agent"] == "Li Na" and r["desk"] == "Desk 7"


def test_a_new_viewer_gets_the_call_duration_from_the_state():
    fleet: dict = {}
    fold(fleet, "hs/sh/st-1/status", j(BIRTH), T0, retained=True)
    fold(fleet, "hs/sh/st-1/state", j(dict(ON_HOLD, call_started=iso(T0 + 10))), T0 + 100, retained=True)
    assert row(fleet, T0 + 130)["call_s"] == pytest.approx(120)


def test_the_retained_state_of_an_earlier_session_is_not_live():
    fleet: dict = {}
    fold(fleet, "hs/sh/st-1/status", j(dict(BIRTH, ts=iso(T0 + 200))), T0 + 300, retained=True)
    fold(fleet, "hs/sh/st-1/state", j(dict(ON_HOLD, ts=iso(T0 + 100))), T0 + 300, retained=True)
    assert not row(fleet, T0 + 301)["on_hold"]


def test_names_fall_back_to_the_station_id_and_cues_are_words():
    fleet: dict = {}
    fold(fleet, "hs/sh/st-2/event", j({"type": "cue", "cue": "say_busy", "ts": iso(T0)}), T0)
    fold(fleet, "hs/sh/st-2/event", j({"type": "cue", "cue": "site_special", "ts": iso(T0)}), T0)
    r = row(fleet, T0, "st-2")
    assert r["name"] == "st-2" and r["cue_en"] == "site_special"
    assert cue_words("say_busy") == "10 s of silence: tell the customer the system is busy"
    assert cue_words("say_busy", "zh") and cue_words("say_busy", "zh") != cue_words("say_busy")
    assert cue_words("") == ""


def test_every_readme_legend_cue_has_words_in_both_languages():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    legend = readme.split("## LED legend for agents", 1)[1].split("\n## ", 1)[0]
    cues = re.findall(r"^\|[^|]*\|[^|]*\| `([a-z_]+)` \| (.+) \|$", legend, re.M)
    assert len(cues) >= 19
    for cue, words in cues:
        assert CUE_WORDS[cue]["en"] == words.strip(), cue
        assert CUE_WORDS[cue]["zh"], cue


def test_dead_air_is_tracked_from_the_cue_and_ends_with_it():
    fleet: dict = {}
    fold(fleet, "hs/sh/st-1/status", j(BIRTH), T0)
    fold(fleet, "hs/sh/st-1/event", j({"type": "call.start", "call": "c", "ts": iso(T0 + 1)}), T0 + 1)
    fold(fleet, "hs/sh/st-1/event", j({"type": "cue", "cue": "say_wait", "ts": iso(T0 + 10)}), T0 + 10)
    fold(fleet, "hs/sh/st-1/event", j({"type": "cue", "cue": "say_busy", "ts": iso(T0 + 15)}), T0 + 15)
    r = row(fleet, T0 + 20)
    assert r["dead_air"] and r["dead_air_s"] == pytest.approx(10)
    assert site_summary(fleet.values(), T0 + 20)[0]["dead_air"] == 1
    fold(fleet, "hs/sh/st-1/event", j({"type": "cue", "cue": "speak", "ts": iso(T0 + 21)}), T0 + 21)
    assert not row(fleet, T0 + 22)["dead_air"]


def test_odd_numbers_in_a_state_are_ignored():
    fleet: dict = {}
    for bad in (float("nan"), float("inf"), -5, True, "12"):
        fold(fleet, "hs/sh/st-1/state", json.dumps(dict(ON_HOLD, hold_s=bad, call_s=bad)).encode(), T0)
        r = row(fleet, T0)
        assert r["hold_s"] == 0 or r["hold_s"] == pytest.approx(0)
        json.dumps(r, allow_nan=False)


def test_render_shows_names_durations_words_and_offline_since():
    from rich.console import Console

    fleet: dict = {}
    fold(fleet, "hs/sh/st-1/status", j(BIRTH), T0)
    fold(fleet, "hs/sh/st-1/event", j({"type": "call.start", "call": "c", "ts": iso(T0)}), T0)
    fold(fleet, "hs/sh/st-1/event", j({"type": "cue", "cue": "hold_over", "ts": iso(T0)}), T0)
    fold(fleet, "hs/sh/st-2/status", j(dict(WILL, bdSeq=1)), T0 + 5)
    console = Console(record=True, width=200)
    console.print(render(table_rows(fleet, T0 + 125), site_summary(fleet.values(), T0 + 125)))
    text = console.export_text()
    assert "Desk 7" in text and "on call 2:05" in text and "take the call back" in text
    assert "offline since" in text and "1 offline" in text
