"""Cue table, patterns, priorities, overrides and their validation, brief cues."""

import pytest
from fixtures_station import answered

from firmware.config.leds import (
    CUE_NAMES,
    RGB_TABLE,
    TOWER_TABLE,
    build_table,
    check_cue_overrides,
    parse_pattern,
    parse_rgb,
)
from firmware.config.settings import settings_from_dict
from firmware.errors import ConfigError
from firmware.station.cues import CueBoard

SPEC_CUES = (
    "idle on_call greet pause speak hangup_ok hold hold_warn hold_over thank_waiting say_wait "
    "say_busy apologize_wait lower_voice overtalk call_back wrap_up outside_hours fault"
).split()


@pytest.mark.parametrize("table", [TOWER_TABLE, RGB_TABLE])
def test_every_spec_cue_has_a_valid_default(table):
    assert set(SPEC_CUES) <= set(table)
    for name, spec in table.items():
        for led, pattern in spec.leds.items():
            (parse_rgb if led == "rgb" else parse_pattern)(pattern)
    assert set(RGB_TABLE) == set(TOWER_TABLE)


def test_tower_specs_list_every_led():
    for spec in TOWER_TABLE.values():
        assert set(spec.leds) == {"green", "amber", "red"}


def test_priorities_fault_first_idle_last_hold_over_beats_hold():
    p = {n: TOWER_TABLE[n].priority for n in CUE_NAMES}
    assert p["fault"] == max(p.values()) and p["idle"] == min(p.values())
    assert p["hold_over"] > p["hold_warn"] > p["hold"] > p["on_call"]
    assert len(set(p.values())) == len(p)  # no ties between defaults


def test_pattern_parsing():
    assert parse_pattern("blink 2Hz") == ("blink", 2.0)
    assert parse_pattern("pulse 0.5hz") == ("pulse", 0.5)
    assert parse_pattern("on") == ("steady", 0.0) and parse_pattern("steady") == ("steady", 0.0)
    assert parse_rgb("amber blink 1Hz") == ("amber", "blink", 1.0)
    assert parse_rgb("off") == ("off", "off", 0.0)
    for bad in ("wobble", "blink", "blink 0Hz", "blink 50Hz", 3):
        with pytest.raises(ValueError):
            parse_pattern(bad)
    with pytest.raises(ValueError):
        parse_rgb("purple")


def test_overrides_apply():
    table, problems = build_table("tower", {"hold": {"leds": ["red", "amber"], "pattern": "blink 1Hz", "priority": 64}})
    assert problems == []
    assert table["hold"].leds == {"green": "off", "amber": "blink 1Hz", "red": "blink 1Hz"}
    assert table["hold"].priority == 64
    table, problems = build_table("tower", {"pause": {"leds": {"amber": "steady", "green": "pulse 1Hz"}}})
    assert table["pause"].leds == {"green": "pulse 1Hz", "amber": "steady", "red": "off"} and not problems
    table, problems = build_table("rgb", {"hold": {"leds": "cyan", "pattern": "pulse 1Hz"}})
    assert table["hold"].leds == {"rgb": "cyan pulse 1Hz"} and not problems


def test_override_problems_are_clear():
    problems = check_cue_overrides(
        {
            "hodl": {"leds": ["red"]},
            "hold": {"leds": ["purple"], "pattern": "blink 2Hz"},
            "pause": {"leds": ["amber"], "pattern": "flash"},
            "speak": {"leds": ["green"], "priority": "high"},
            "greet": "green",
            "overtalk": {"led": ["red"]},
        }
    )
    text = "\n".join(problems)
    assert "leds.cues.hodl: unknown cue" in text
    assert "leds.cues.hold.leds: unknown LED 'purple'" in text
    assert "leds.cues.pause.pattern: 'flash'" in text
    assert "leds.cues.speak.priority" in text
    assert "leds.cues.greet: expected a table" in text
    assert "leds.cues.overtalk.led: unknown key" in text
    assert check_cue_overrides({"hold": {"leds": "magenta"}}, "rgb") == []
    assert check_cue_overrides({"hold": {"leds": "mauve"}}, "rgb")


def test_config_check_reports_bad_cues():
    with pytest.raises(ConfigError) as err:
        settings_from_dict({"leds": {"cues": {"hold": {"leds": ["red"], "pattern": "wobble"}}}})
    assert any("leds.cues.hold" in p for p in err.value.problems)


def test_board_highest_priority_latest_wins_ties():
    shown = []
    table = dict(TOWER_TABLE)
    board = CueBoard(table, lambda t, cue, spec: shown.append((t, cue)))
    for change in (
        (0.0, "idle"),
        (1.0, "on_call"),
        (2.0, "hold"),
        (3.0, "pause"),  # lower than hold: no change
        (4.0, "hold", False),
    ):  # pause shows now
        board.set(*change)
        board.flush()
    board.set(5.0, "hold_warn")  # a burst at one instant shows where it ends
    board.set(5.0, "hold_warn", False)
    board.flush()
    board.clear(6.0)
    board.flush()
    assert shown == [(0.0, "idle"), (1.0, "on_call"), (2.0, "hold"), (4.0, "pause"), (6.0, "idle")]


def test_cue_events_carry_the_led_description():
    h = answered()
    h.input(1.0, "mute", True)
    ev = [e for e in h.of("cue") if e["cue"] == "hold"][0]
    assert ev["leds"] == {"green": "off", "amber": "pulse 0.5Hz", "red": "off"}


def test_rgb_station_reports_rgb_leds():
    from firmware.config.settings import Settings

    h = answered(settings=Settings().replace(leds={"kind": "rgb"}))
    assert h.of("cue")[-1]["leds"] == {"rgb": "green blink 4Hz"}  # greet


@pytest.mark.parametrize("cue,duration_s", [("overtalk", 3.0), ("thank_waiting", 4.0), ("lower_voice", 3.0)])
def test_brief_cues_expire(cue, duration_s):
    h = answered()
    h.speech("tx", 0.2, 1.0)
    h.speech_start("rx", 1.2)  # the customer keeps talking: no dead-air cue in the way
    h.station.brief_cue(3.0, cue)
    h.advance(3.0 + duration_s - 0.01)
    assert h.station.state["cue"] == cue
    h.advance(3.0 + duration_s)
    assert h.station.state["cue"] == "on_call"
    assert h.cues()[-1] == (pytest.approx(3.0 + duration_s), "on_call")


def test_no_cue_outlives_the_call():
    h = answered()
    h.speech("tx", 0.2, 1.0)
    h.input(2.0, "mute", True)
    h.advance(70.0)
    h.on(71.0)
    assert h.station.state["cue"] == "idle"
    h.advance(200.0)
    assert h.cues()[-1] == (71.0, "idle")


@pytest.mark.parametrize("table", [TOWER_TABLE, RGB_TABLE])
def test_every_cue_looks_different(table):
    looks = [tuple(sorted(spec.leds.items())) for spec in table.values()]
    assert len(set(looks)) == len(looks)


def test_an_led_list_of_the_wrong_type_is_a_problem_not_a_crash():
    import pytest

    from firmware.config.settings import settings_from_dict
    from firmware.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        settings_from_dict({"leds": {"cues": {"hold": {"leds": 5, "pattern": "steady"}}}})
    assert any(p.startswith("leds.cues.hold.leds: expected a list") for p in info.value.problems)
