"""The rules' typed context: what each rule may change, and the explicit order they run in."""

import pytest
from fixtures_station import answered

from firmware.station.rules import RULE_ORDER, build_rules, order_problems
from firmware.station.rules.context import DEAD_AIR, OVERTALK, PHASE, SCRIPT, WRITES, RuleWriteError
from firmware.station.rules.dead_air import DeadAir
from firmware.station.rules.scripts import Scripts


def test_the_order_is_explicit():
    assert [r.id for r in RULE_ORDER] == [
        "hold-limit",
        "answer-rings",
        "greet-in-time",
        "scripts",
        "dead-air",
        "no-interrupt",
        "agent-volume",
        "hangup-pause",
        "far-end-gone",
        "call-length",
        "calling-hours",
    ]
    h = answered()
    assert [type(r) for r in h.station.rules] == list(RULE_ORDER)


def test_every_writer_runs_before_its_readers():
    assert order_problems() == []
    swapped = tuple(r for r in RULE_ORDER if r is not Scripts)
    swapped = swapped[: swapped.index(DeadAir) + 1] + (Scripts,) + swapped[swapped.index(DeadAir) + 1 :]
    assert order_problems(swapped) == ["dead-air reads script, which scripts writes, but runs first"]


def test_declared_writes():
    writes = {r.id: set(r.writes) for r in RULE_ORDER if r.writes}
    assert writes == {"scripts": {SCRIPT, PHASE}, "dead-air": {DEAD_AIR}, "no-interrupt": {OVERTALK}}
    assert all(r.writes <= WRITES and r.reads <= WRITES for r in RULE_ORDER)


def test_undeclared_writes_are_refused():
    h = answered()
    ctx = {type(r).__name__: r.ctx for r in h.station.rules}
    with pytest.raises(RuleWriteError, match="dead-air may not change script"):
        ctx["DeadAir"].set_script({"script": "silent-call", "step": 0, "prompt": None, "final": False})
    with pytest.raises(RuleWriteError, match="hold-limit may not change overtalk_count"):
        ctx["HoldLimit"].count_overtalk()
    with pytest.raises(RuleWriteError, match="may set the phase to"):
        ctx["Scripts"].set_phase("idle")
    # the read-only views: no write through them
    with pytest.raises(AttributeError):
        ctx["Scripts"].call.phase = "closing"
    with pytest.raises(TypeError):
        ctx["NoInterrupt"].speaking["rx"] = True
    script = ctx["DeadAir"].script
    assert script is None
    # a declared write goes through, and the station shows it
    ctx["NoInterrupt"].count_overtalk()
    h.on(1.0)
    assert h.one("call.end")["overtalk_count"] == 1
    assert h.station.call is None


def test_contexts_are_per_rule():
    rules = answered().station.rules
    assert len({id(r.ctx) for r in rules}) == len(rules)
    assert all(r.ctx.rule_id == r.id and r.ctx.writes == type(r).writes for r in rules)
    assert len(build_rules(answered().station)) == len(RULE_ORDER)
