"""Every number a user or the network can set is finite and in range: config file, profile
file, [profile] overrides, overrides.json, cmd/set-config values and CLI number options.

The fuzz tests go over *every* numeric settings field and *every* profile timing key, so a
field added later is covered without touching this file.
"""

import dataclasses
import json
import math

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from firmware.config.profiles import TIMING_KEYS, load_profile, profile_from_dict
from firmware.config.settings import SECTIONS, Settings, settings_from_dict
from firmware.config.tomlfile import TomlFileError, parse_toml
from firmware.config.validate import number_arg
from firmware.errors import ConfigError
from firmware.reporting.commands import OVERRIDES_FILE, CommandHandler, load_overrides

NUMERIC_FIELDS = [
    (name, f) for name, cls in SECTIONS.items() for f in dataclasses.fields(cls) if f.type in (int, float)
]

# Numbers of every kind: the specials, the edges of every range, huge and tiny ones.
EDGES = sorted(
    {v for _name, f in NUMERIC_FIELDS for v in (f.metadata["check"].lo, f.metadata["check"].hi) if v is not None}
    | {v for t in TIMING_KEYS.values() for v in (t.lo, t.hi)}
)
numbers = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, -1e308, 5e-324, 10**30, -(10**30), 2**63, True]),
    st.sampled_from(EDGES),
    st.sampled_from(EDGES).map(lambda v: v + 1e-9),
    st.sampled_from(EDGES).map(lambda v: v - 1e-9),
    st.sampled_from(EDGES).map(lambda v: v + 1),
    st.sampled_from(EDGES).map(lambda v: v - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
)


BASE_SCRIPTS = load_profile("hotline-5s").describe()["scripts"]


def _in_range(value, typ, lo, hi, choices=None) -> bool:
    if isinstance(value, bool):
        return False
    if typ is int and not isinstance(value, int):
        return False
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if choices is not None:
        return value in choices
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def test_the_fuzz_covers_every_numeric_setting():
    names = {f"{s}.{f.name}" for s, f in NUMERIC_FIELDS}
    assert {"mqtt.outbox_max_mb", "audio.tx_gain_db", "gpio.bounce_s", "mqtt.keepalive_s"} <= names
    assert len(NUMERIC_FIELDS) >= 25 and len(TIMING_KEYS) >= 15


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(NUMERIC_FIELDS), value=numbers)
def test_a_numeric_setting_is_never_accepted_unless_finite_and_in_range(field, value):
    section, f = field
    check = f.metadata["check"]
    key = f"{section}.{f.name}"
    try:
        settings = settings_from_dict({section: {f.name: value}})
    except ConfigError as exc:
        if not _in_range(value, f.type, check.lo, check.hi, check.choices):
            assert any(p.startswith(key + ":") for p in exc.problems), exc.problems
        return
    assert _in_range(value, f.type, check.lo, check.hi, check.choices), (key, value)
    stored = getattr(getattr(settings, section), f.name)
    assert type(stored) is f.type and math.isfinite(stored)


@hsettings(max_examples=100, deadline=None)
@given(value=numbers)
def test_a_number_in_a_list_setting_is_never_accepted_unless_an_integer_pin(value):
    try:
        settings_from_dict({"leds": {"kind": "rgb", "rgb_pins": [2, 3, value]}})
    except ConfigError as exc:
        assert any(p.startswith("leds.rgb_pins") for p in exc.problems), exc.problems
        return
    assert _in_range(value, int, 0, 27) and value not in (2, 3)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(TIMING_KEYS)), value=numbers)
def test_a_profile_number_is_never_accepted_unless_finite_and_in_range(key, value):
    timing = TIMING_KEYS[key]
    ok = _in_range(value, timing.type, timing.lo, timing.hi)
    # 1. the [profile] table of a station config
    try:
        s = settings_from_dict({"profile": {key: value}})
        load_profile(s.station.profile, s.profile)
        accepted = True
    except ConfigError:
        accepted = False
    assert not accepted or ok, ("config [profile]", key, value)
    # 2. the [timings] table of a profile file
    data = {"name": "x", "timings": {key: value}, "greeting": {"zh": "您好", "en": "Hello"}, "scripts": BASE_SCRIPTS}
    try:
        profile_from_dict(data, "x.toml")
        accepted = True
    except ConfigError:
        accepted = False
    assert not accepted or ok, ("profile [timings]", key, value)


def _handler(tmp_path, applied: list):
    def apply(overrides):
        applied.append(load_profile("hotline-5s", overrides))  # the service builds the profile like this

    return CommandHandler(dict, apply, lambda: None, lambda: None, tmp_path)


@hsettings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(key=st.sampled_from(sorted(TIMING_KEYS)), value=numbers)
def test_a_set_config_value_is_never_accepted_unless_finite_and_in_range(tmp_path, key, value):
    (tmp_path / OVERRIDES_FILE).unlink(missing_ok=True)
    applied: list = []
    handler = _handler(tmp_path, applied)
    # Python's json writes NaN/Infinity literals, as a careless (or hostile) sender would.
    payload = json.dumps({"set": {key: value}}).encode()
    reply = handler.handle("set-config", payload)
    timing = TIMING_KEYS[key]
    if reply["ok"]:
        assert _in_range(value, timing.type, timing.lo, timing.hi), (key, value, reply)
        persisted = json.loads((tmp_path / OVERRIDES_FILE).read_text())
        assert persisted[key] == value and math.isfinite(persisted[key])
    else:
        assert reply["error"].startswith("set-config"), reply
        assert not (tmp_path / OVERRIDES_FILE).exists(), "a refused value must not be persisted"
        assert not applied


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_set_config_nan_is_an_error_reply_and_nothing_is_persisted(tmp_path, literal):
    applied: list = []
    handler = _handler(tmp_path, applied)
    reply = handler.handle("set-config", f'{{"set": {{"hold_limit_s": {literal}}}, "id": 7}}'.encode())
    assert reply["ok"] is False and reply["id"] in (7, None), reply
    assert "hold_limit_s" in reply["error"] or "not a number" in reply["error"], reply
    assert not (tmp_path / OVERRIDES_FILE).exists() and not applied
    assert handler.overrides == {}


def test_set_config_refuses_a_warning_after_the_limit(tmp_path):
    applied: list = []
    handler = _handler(tmp_path, applied)
    reply = handler.handle("set-config", b'{"set": {"hold_warn_s": 90}}')  # limit is 60 in hotline-5s
    assert reply["ok"] is False and "hold_warn_s" in reply["error"] and "hold_limit_s" in reply["error"], reply
    assert not (tmp_path / OVERRIDES_FILE).exists()
    assert handler.handle("set-config", b'{"set": {"hold_warn_s": 50}}')["ok"] is True


@pytest.mark.parametrize(
    "content",
    [
        '{"hold_limit_s": NaN}',
        '{"hold_limit_s": 1e999}',
        '{"hold_limit_s": -3}',
        '{"bogus_s": 1}',
        "[1, 2]",
        "not json",
        "[" * 5000,
    ],
)
def test_a_bad_persisted_override_is_reported_not_applied(tmp_path, caplog, content):
    (tmp_path / OVERRIDES_FILE).write_text(content)
    handler = CommandHandler(dict, lambda o: None, lambda: None, lambda: None, tmp_path)
    assert handler.overrides == {}
    assert "invalid persisted overrides" in handler.dropped  # the service reports it as a storage fault
    assert load_overrides(tmp_path) == {}  # set aside, not applied
    aside = list(tmp_path.glob(OVERRIDES_FILE + ".invalid-*"))
    assert len(aside) == 1 and aside[0].read_text() == content, "kept for inspection"


def test_a_valid_persisted_override_is_applied(tmp_path):
    (tmp_path / OVERRIDES_FILE).write_text('{"hold_limit_s": 90}')
    handler = CommandHandler(dict, lambda o: None, lambda: None, lambda: None, tmp_path)
    assert handler.overrides == {"hold_limit_s": 90}


@pytest.mark.parametrize(
    "text, lo, hi",
    [
        ("nan", 0, 10),
        ("inf", 0, 10),
        ("-inf", None, None),
        ("1e999", 0, None),
        ("-1", 0, 10),
        ("11", 0, 10),
        ("abc", 0, 10),
        ("", 0, 10),
    ],
)
def test_cli_number_options_refuse_nan_and_out_of_range(text, lo, hi):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        number_arg(float, lo=lo, hi=hi)(text)


def test_cli_number_option_accepts_a_finite_value_in_range():
    assert number_arg(float, lo=0, hi=10)("2.5") == 2.5
    assert number_arg(int, lo=0, hi=10)("10") == 10


# --- values that are not numbers: topic levels, pins, lists ------------------------------------------


@pytest.mark.parametrize("key", ["id", "site"])
@pytest.mark.parametrize("value", ["a/b", "#", "+", "", "st+1", "a#", "x\x00y"])
def test_station_id_and_site_must_be_one_topic_level(key, value):
    with pytest.raises(ConfigError) as exc:
        settings_from_dict({"station": {key: value}})
    assert any(p.startswith(f"station.{key}:") and "one MQTT topic level" in p for p in exc.value.problems)


def test_a_topic_level_may_hold_other_characters():
    s = settings_from_dict({"station": {"id": "desk-07.b_2 Ü", "site": "Shanghai-3F"}})
    assert s.station.id == "desk-07.b_2 Ü"


@pytest.mark.parametrize(
    "table, key",
    [
        ({"gpio": {"hook_pin": 27}}, "gpio.mute_pin"),  # mute_pin defaults to 27
        ({"gpio": {"hook_pin": 5}}, "leds.green_pin"),  # green_pin defaults to 5
        ({"gpio": {"ring_pin": 17}}, "gpio.ring_pin"),
        ({"leds": {"red_pin": 6}}, "leds.red_pin"),
        ({"leds": {"kind": "rgb", "rgb_pins": [16, 16, 21]}}, "leds.rgb_pins[1]"),
        ({"leds": {"kind": "rgb", "rgb_pins": [17, 20, 21]}}, "leds.rgb_pins[0]"),
    ],
)
def test_every_pin_is_used_once(table, key):
    with pytest.raises(ConfigError) as exc:
        settings_from_dict(table)
    assert any(p.startswith(key + ":") and "already" in p for p in exc.value.problems), exc.value.problems


def test_pins_of_unused_leds_may_overlap():
    settings_from_dict({"gpio": {"hook_pin": 5}, "leds": {"kind": "none"}})
    settings_from_dict({"gpio": {"hook_pin": 16}, "leds": {"kind": "tower"}})  # rgb_pins unused on a tower


@pytest.mark.parametrize("pins", [[1, 2], [1, 2, 3, 4], [1, 2, 99], [1, 2, "3"], [1, 2, 3.0], [1, 2, True]])
def test_rgb_pins_items_are_checked(pins):
    with pytest.raises(ConfigError) as exc:
        settings_from_dict({"leds": {"kind": "rgb", "rgb_pins": pins}})
    assert any(p.startswith("leds.rgb_pins") for p in exc.value.problems), exc.value.problems


@pytest.mark.parametrize("brokers", [["mqtt://a", "mqtts://b"], ["tcp://x"], ["mqtt://[::1"], [1]])
def test_broker_lists_are_checked(brokers):
    with pytest.raises(ConfigError) as exc:
        settings_from_dict({"mqtt": {"brokers": brokers}})
    assert any(p.startswith("mqtt.brokers") for p in exc.value.problems), exc.value.problems


def test_unknown_pin_factory_is_a_config_problem():
    with pytest.raises(ConfigError, match="gpio.pin_factory"):
        settings_from_dict({"gpio": {"pin_factory": "lgpoi"}})
    settings_from_dict({"gpio": {"pin_factory": "mock"}})


def test_replace_checks_like_the_config_file():
    s = Settings()
    with pytest.raises(ConfigError, match="station.id"):
        s.replace(station={"id": "a/b"})
    with pytest.raises(ConfigError, match="mqtt.outbox_max_mb"):
        s.replace(mqtt={"outbox_max_mb": math.nan})
    with pytest.raises(ConfigError, match="gpio.mute_pin"):
        s.replace(gpio={"mute_pin": 17})


def test_settings_fields_have_real_types():
    for cls in SECTIONS.values():
        for f in dataclasses.fields(cls):
            assert not isinstance(f.type, str), (cls.__name__, f.name, f.type)


def test_hold_warning_after_the_limit_is_refused_in_config_and_profile():
    s = settings_from_dict({"profile": {"hold_warn_s": 70}})  # each value in range alone
    with pytest.raises(ConfigError, match="hold_warn_s"):
        load_profile(s.station.profile, s.profile)
    with pytest.raises(ConfigError, match="hold_warn_s"):
        load_profile("hotline-5s", {"hold_warn_s": 100, "hold_limit_s": 90})
    assert load_profile("hotline-5s", {"hold_warn_s": 60, "hold_limit_s": 60}).hold_warn_s == 60


# --- TOML that would crash or hang a reader -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 5000 + "]" * 5000,
        "a = " + "{b=" * 5000 + "1" + "}" * 5000,
        ".".join(["a"] * 5000) + " = 1",
        "[" + ".".join(["a"] * 5000) + "]\n",
        "a = " + "[" * 40 + "]" * 40,
    ],
)
def test_deeply_nested_toml_is_one_line_error(text):
    with pytest.raises(TomlFileError) as exc:
        parse_toml(text)
    assert "nested more than" in exc.value.reason and "\n" not in exc.value.reason


def test_deep_values_in_a_settings_dict_give_short_messages():
    deep: dict = {}
    for _ in range(5000):
        deep = {"x": deep}
    with pytest.raises(ConfigError) as exc:
        settings_from_dict({"profile": {"pause_s": deep}, "leds": {"cues": {"hold": {"leds": deep}}}})
    assert all(len(p) < 400 for p in exc.value.problems)


def test_persisted_overrides_that_contradict_the_profile_do_not_stop_the_service(tmp_path, caplog):
    from types import SimpleNamespace

    from firmware.runtime.wiring import command_handler

    (tmp_path / OVERRIDES_FILE).write_text('{"hold_warn_s": 100}')  # in range alone; above the limit of 60
    start_profile = load_profile("hotline-5s")
    faults = []
    service = SimpleNamespace(
        settings=Settings().replace(station={"state_dir": str(tmp_path)}),
        profile=start_profile,
        request_restart=lambda: None,
        report_fault=lambda *a: faults.append(a),
    )
    handler = command_handler(service)
    assert handler.overrides == {} and service.profile is start_profile
    assert faults and faults[0][0] == "storage" and "hold_warn_s" in faults[0][1]


def test_every_setting_is_documented_and_the_printed_defaults_are_a_valid_config():
    from firmware.config.settings import describe_defaults

    for cls in SECTIONS.values():
        for f in dataclasses.fields(cls):
            assert f.metadata["doc"], f"{cls.__name__}.{f.name} has no doc"
    assert settings_from_dict(parse_toml(describe_defaults()), "defaults") == Settings(source="defaults")
