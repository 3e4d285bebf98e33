"""The LED cue driver: shows a cue spec (firmware.cues) on a green/amber/red tower or one
RGB LED through gpiozero. The only code that touches the LED pins.

Patterns: `off`, `steady`, `blink <rate>Hz` (50 % duty, gpiozero's background blink) and
`pulse <rate>Hz` (fade in and out once per period; needs PWM, so on a pin factory without
PWM it falls back to a blink at the same rate). Pins come from `LedSettings`; the pin
factory is gpiozero's default unless one is passed (the mock factory in --simulate/tests).
"""

from __future__ import annotations

import logging

from firmware.config.leds import RGB_COLOURS, parse_pattern, parse_rgb
from firmware.errors import GpioError

log = logging.getLogger(__name__)


def _apply(device, kind: str, rate_hz: float, pwm: bool, colour=None) -> None:
    """Drive one gpiozero LED/PWMLED/RGBLED with a parsed pattern."""
    extra = {} if colour is None else {"on_color": colour}
    if kind == "off":
        device.off()
    elif kind == "steady":
        if colour is None:
            device.on()
        else:
            device.color = colour
    else:
        half_s = 0.5 / rate_hz
        if kind == "pulse" and pwm:
            device.pulse(fade_in_time=half_s, fade_out_time=half_s, **extra)
        else:
            device.blink(on_time=half_s, off_time=half_s, **extra)


class LedDriver:
    """`show(cue, spec)` for the station; `close()` is safe twice; a context manager."""

    def __init__(self, settings, pin_factory=None):
        self.kind = settings.kind
        self.shown: str | None = None
        self._devices: dict = {}
        self.pwm = True
        try:
            self._open(settings, pin_factory, pwm=True)
        except Exception as exc:
            if type(exc).__name__ != "PinPWMUnsupported":
                raise GpioError(f"leds: cannot set up the {self.kind} LEDs ({exc})") from None
            # This pin factory has no PWM: steady/blink still work, pulse becomes blink.
            self.close()
            self.pwm = False
            try:
                self._open(settings, pin_factory, pwm=False)
            except Exception as exc2:
                raise GpioError(f"leds: cannot set up the {self.kind} LEDs ({exc2})") from None

    def _open(self, s, pin_factory, pwm: bool) -> None:
        from gpiozero import LED, PWMLED, RGBLED

        if self.kind == "rgb":
            red, green, blue = s.rgb_pins
            self._devices["rgb"] = RGBLED(red, green, blue, active_high=s.active_high, pwm=pwm, pin_factory=pin_factory)
            return
        cls = PWMLED if pwm else LED
        for name in ("green", "amber", "red"):
            self._devices[name] = cls(getattr(s, f"{name}_pin"), active_high=s.active_high, pin_factory=pin_factory)

    def show(self, cue: str, spec) -> None:
        for led, pattern in spec.leds.items():
            device = self._devices.get(led)
            if device is None:
                continue  # a spec for the other board kind: nothing wired for it
            if led == "rgb":
                colour, kind, rate_hz = parse_rgb(pattern)
                rgb: tuple[float, ...] = RGB_COLOURS.get(colour, (0.0, 0.0, 0.0))
                if not self.pwm:  # a non-PWM RGB LED takes 0/1 per channel
                    rgb = tuple(1 if c >= 0.5 else 0 for c in rgb)
                _apply(device, kind, rate_hz, self.pwm, colour=rgb)
            else:
                kind, rate_hz = parse_pattern(pattern)
                _apply(device, kind, rate_hz, self.pwm)
        self.shown = cue

    def close(self) -> None:
        for device in self._devices.values():
            try:
                device.close()
            except Exception as exc:  # closing must never fail the shutdown
                log.warning("closing LED %r: %s", device, exc)
        self._devices = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
