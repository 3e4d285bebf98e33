"""Hook, mute and ring inputs as gpiozero Buttons on MockFactory pins: active state, debounce, edges."""

import queue
import time
from pathlib import Path

import pytest

from firmware.config.settings import GpioSettings
from firmware.errors import GpioError
from hal.gpio import GpioInputs, make_pin_factory


@pytest.fixture
def factory():
    f = make_pin_factory(simulate=True)
    yield f
    f.reset()
    f.close()


def open_inputs(factory, **kw):
    edges = queue.Queue()
    settings = GpioSettings(**{"bounce_s": 0.03, **kw})
    inputs = GpioInputs(settings, lambda t, name, value: edges.put((t, name, value)), pin_factory=factory)
    return inputs, edges


def next_edge(edges, timeout_s=1.0):
    return edges.get(timeout=timeout_s)


def test_pull_up_hook_switch_closed_means_handset_lifted(factory):
    inputs, edges = open_inputs(factory)
    with inputs:
        assert inputs.initial() == {"hook_off": False, "muted": False}
        pin = inputs.pin("hook")
        t0 = time.monotonic()
        pin.drive_low()  # switch closes to ground
        t, name, value = next_edge(edges)
        assert (name, value) == ("hook", "off")
        assert t0 <= t < t0 + 0.02, "the edge is stamped with the first raw change, not the settle time"
        pin.drive_high()
        assert next_edge(edges)[1:] == ("hook", "on")


def test_active_state_and_pull_are_configurable(factory):
    inputs, edges = open_inputs(factory, hook_pull_up=False, hook_off_when_pressed=False)
    with inputs:
        pin = inputs.pin("hook")
        # pull-down: pressed = high; hook_off_when_pressed=False: pressed = handset down
        assert inputs.initial()["hook_off"] is True
        pin.drive_high()
        assert next_edge(edges)[1:] == ("hook", "on")
        pin.drive_low()
        assert next_edge(edges)[1:] == ("hook", "off")


def test_contact_bounce_gives_one_edge_and_keeps_the_final_level(factory):
    inputs, edges = open_inputs(factory, bounce_s=0.05)
    with inputs:
        pin = inputs.pin("hook")
        for _ in range(5):  # a bouncing contact, 5 ms apart
            pin.drive_low()
            time.sleep(0.005)
            pin.drive_high()
            time.sleep(0.005)
        pin.drive_low()
        assert next_edge(edges)[1:] == ("hook", "off")
        with pytest.raises(queue.Empty):
            edges.get(timeout=0.2)
        # A glitch shorter than the bounce time that returns to the same level is no edge at all.
        pin.drive_high()
        time.sleep(0.005)
        pin.drive_low()
        with pytest.raises(queue.Empty):
            edges.get(timeout=0.2)


def test_toggle_mute_key_flips_hold_on_each_press(factory):
    inputs, edges = open_inputs(factory)
    with inputs:
        pin = inputs.pin("mute")
        for want in (True, False):
            pin.drive_low()
            time.sleep(0.06)
            pin.drive_high()
            assert next_edge(edges)[1:] == ("mute", want)
            time.sleep(0.06)  # a release shorter than the bounce time would be a bounce
        with pytest.raises(queue.Empty):
            edges.get(timeout=0.1)  # releases are not edges in toggle mode


def test_momentary_mute_and_ring_detect(factory):
    inputs, edges = open_inputs(factory, mute_toggle=False, ring_pin=22)
    with inputs:
        assert inputs.names == ("hook", "mute", "ring")
        inputs.pin("mute").drive_low()
        assert next_edge(edges)[1:] == ("mute", True)
        inputs.pin("mute").drive_high()
        assert next_edge(edges)[1:] == ("mute", False)
        inputs.pin("ring").drive_low()
        assert next_edge(edges)[1:] == ("ring", True)


def test_drive_moves_the_mock_pins_like_a_scenario(factory):
    inputs, edges = open_inputs(factory)
    with inputs:
        inputs.drive("hook", "off")
        assert next_edge(edges)[1:] == ("hook", "off")
        inputs.drive("mute", True)  # toggle key: a press and a release
        assert next_edge(edges)[1:] == ("mute", True)
        time.sleep(0.1)
        inputs.drive("mute", True)  # already on hold: nothing to do
        inputs.drive("mute", False)
        assert next_edge(edges)[1:] == ("mute", False)


def test_close_is_safe_twice_and_frees_the_pins(factory):
    inputs, _ = open_inputs(factory)
    inputs.close()
    inputs.close()
    again, _ = open_inputs(factory)  # the pins can be claimed again
    again.close()


def test_pin_clash_and_unknown_factory_are_gpio_errors(factory):
    with pytest.raises(GpioError, match="mute_pin 17"):
        open_inputs(factory, mute_pin=17)  # same pin as the hook switch
    with pytest.raises(GpioError, match="unknown"):
        make_pin_factory("no-such-factory")


def test_factory_comes_from_config_or_environment(monkeypatch):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    assert type(make_pin_factory("")).__name__ == "MockFactory"
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY")
    if Path("/dev/gpiochip0").exists():
        pytest.skip("a machine with GPIO: gpiozero's own choice would work here")
    with pytest.raises(GpioError, match="use --simulate"):
        make_pin_factory("")  # gpiozero's own choice (lgpio on a Pi): none here
