"""Any scenario file either loads or fails with an InputError: never another exception."""

import string

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from firmware.errors import InputError
from firmware.sim.scenario import load_scenario

scalars = st.one_of(
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(string.printable, max_size=12),
)
keys = st.sampled_from(["t", "hook", "mute", "ring", "flash", "profile", "start", "rx", "tx", "audio"])


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, int):
        return str(v)
    return (
        '"'
        + v.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("\x0b", "\\u000b")
        .replace("\x0c", "\\f")
        + '"'
    )


@st.composite
def scenario_text(draw):
    lines = []
    for k, v in draw(st.dictionaries(st.sampled_from(["profile", "start", "bogus"]), scalars, max_size=2)).items():
        lines.append(f"{k} = {toml_value(v)}")
    for _ in range(draw(st.integers(0, 4))):
        lines.append("[[inputs]]")
        for k, v in draw(st.dictionaries(keys, scalars, max_size=3)).items():
            lines.append(f"{k} = {toml_value(v)}")
    if draw(st.booleans()):
        lines.append("[audio]")
        for k, v in draw(st.dictionaries(keys, scalars, max_size=2)).items():
            lines.append(f"{k} = {toml_value(v)}")
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=scenario_text())
@example(text='[audio]\nrx = "0\\n"\n')  # an audio path with a newline: the error stays one line
def test_scenario_loads_or_fails_cleanly(tmp_path, text):
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8")
    try:
        sc = load_scenario(path)
    except InputError as exc:
        msg = str(exc)
        assert "fuzz.toml" in msg or ".wav" in msg or "audio" in msg, msg
        assert "\n" not in msg
        return
    assert sc.duration_s >= 0
    assert [t for t, _, _ in sc.inputs] == sorted(t for t, _, _ in sc.inputs)
    assert all(t >= 0 for t, _, _ in sc.inputs)
