"""hal.leds on gpiozero's MockFactory: pin states and their timing for each pattern.

Blink timing is checked with MockPin.assert_states_and_times (gpiozero's tolerance: 5 %
or 50 ms, what a non-realtime thread can promise)."""

import time

import pytest
from fixtures_station import answered

from firmware.config.leds import RGB_TABLE, TOWER_TABLE, CueSpec
from firmware.config.settings import LedSettings
from hal.leds import LedDriver

TOWER = LedSettings()  # green 5, amber 6, red 13
RGB = LedSettings(kind="rgb")  # 16, 20, 21


def pins(factory, *numbers):
    return [factory.pin(n) for n in numbers]


def test_tower_steady_and_off(mock_factory):
    with LedDriver(TOWER) as leds:
        green, amber, red = pins(mock_factory, 5, 6, 13)
        leds.show("on_call", TOWER_TABLE["on_call"])
        assert (green.state, amber.state, red.state) == (1, 0, 0)
        leds.show("lower_voice", TOWER_TABLE["lower_voice"])
        assert (green.state, amber.state, red.state) == (0, 1, 1)
        leds.show("idle", TOWER_TABLE["idle"])
        assert (green.state, amber.state, red.state) == (0, 0, 0)


def test_tower_blink_rate(mock_factory):
    with LedDriver(TOWER) as leds:
        amber = mock_factory.pin(6)
        amber.clear_states()
        leds.show("hold_warn", TOWER_TABLE["hold_warn"])  # amber blink 2Hz: 0.25 s on, 0.25 s off
        time.sleep(1.1)
        leds.show("idle", TOWER_TABLE["idle"])
    amber.assert_states_and_times([(0.0, 0), (0.0, 1), (0.25, 0), (0.25, 1), (0.25, 0), (0.25, 1)])


def test_tower_pulse_fades(mock_factory):
    with LedDriver(TOWER) as leds:
        red = mock_factory.pin(13)
        red.clear_states()
        leds.show("call_back", CueSpec({"green": "off", "amber": "off", "red": "pulse 2Hz"}, 65))
        time.sleep(0.6)
        values = [s.state for s in red.states]
    assert len(values) > 10  # many PWM steps, not on/off
    assert max(values) > 0.9 and 0 < sorted(values)[len(values) // 2] < 1
    # one fade in + fade out per 0.5 s period: the first peak is near 0.25 s
    elapsed, peak_t = 0.0, None
    for s in red.states:
        elapsed += s.timestamp
        if s.state == max(values) and peak_t is None:
            peak_t = elapsed
    assert peak_t == pytest.approx(0.25, abs=0.08)


def test_pulse_without_pwm_falls_back_to_blink():
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    saved, Device.pin_factory = Device.pin_factory, MockFactory()
    try:
        with LedDriver(TOWER) as leds:
            assert leds.pwm is False
            amber = Device.pin_factory.pin(6)
            amber.clear_states()
            leds.show("hold", TOWER_TABLE["hold"])  # amber pulse 0.5Hz -> blink 1 s on/off
            time.sleep(0.3)
            assert amber.state == 1
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = saved


def test_rgb_colours(mock_factory):
    with LedDriver(RGB) as leds:
        r, g, b = pins(mock_factory, 16, 20, 21)
        leds.show("pause", RGB_TABLE["pause"])  # amber
        assert (r.state, g.state, b.state) == (1.0, 0.5, 0.0)
        leds.show("on_call", RGB_TABLE["on_call"])
        assert (r.state, g.state, b.state) == (0.0, 1.0, 0.0)
        b.clear_states()
        leds.show("hold_warn", RGB_TABLE["hold_warn"])  # blue blink 2Hz
        time.sleep(0.6)
        leds.show("idle", RGB_TABLE["idle"])
        assert (r.state, g.state, b.state) == (0, 0, 0)
    b.assert_states_and_times([(0.0, 0), (0.0, 1), (0.25, 0), (0.25, 1)])


def test_close_is_safe_twice(mock_factory):
    leds = LedDriver(TOWER)
    leds.close()
    leds.close()


def test_station_drives_the_leds(mock_factory):
    with LedDriver(TOWER) as leds:
        green, amber, red = pins(mock_factory, 5, 6, 13)
        h = answered("hotline-5s", leds=leds)
        assert leds.shown == "greet"
        h.speech("tx", 0.3, 1.5)
        assert leds.shown == "pause" and (green.state, amber.state) == (0, 1)  # wait for the customer
        h.speech("rx", 2.0, 3.0)
        assert leds.shown == "on_call" and green.state == 1
        h.input(4.0, "mute", True)
        assert leds.shown == "hold"
        h.on(9.0)
        assert leds.shown == "idle" and (green.state, amber.state, red.state) == (0, 0, 0)


def test_broken_led_driver_is_a_fault_not_a_crash():
    class Broken:
        def show(self, cue, spec):
            raise OSError("pin 5 busy")

    h = answered(leds=Broken())
    h.on(10.0)
    faults = h.of("fault")
    assert len(faults) == 1 and faults[0]["component"] == "gpio"
    assert h.one("call.end")
