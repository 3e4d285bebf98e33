"""The desk inputs: hook switch, mute (hold) key and the optional ring detect, as gpiozero Buttons.

Edges reach the service as `(t_s, name, value)` through a callback that must be
thread-safe (the service passes `queue.put`): gpiozero calls us on its own thread.
Values match scenario files: hook "off"/"on", mute True/False, ring True/False.

Debounce is done here, not by the pin factory, because the mock factory does not
implement bounce and lgpio's glitch filter differs from RPi.GPIO's lockout: a raw change
starts a `bounce_s` settle timer and the level is read again when it expires, so a
bouncing contact yields one edge stamped with the instant of its first raw change, and
the final level is never lost (a lockout filter can miss a release inside the window).

The pin factory is chosen by name (`gpio.pin_factory`, else GPIOZERO_PIN_FACTORY, else
gpiozero's own preference: lgpio on every Pi including the Pi 5); `mock` under --simulate.
"""

from __future__ import annotations

import grp
import os
import pwd
import threading
import time
import warnings
from importlib.metadata import entry_points
from pathlib import Path

from firmware.config.settings import GpioSettings
from firmware.errors import GpioError

SIM_RING_PIN = 22  # ring detect on mock pins when the config has none, so --simulate can ring
GPIO_CHIP_DIR = "/dev"
PI_MODEL_FILES = ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model")


def pi_model(model_files=None) -> str | None:
    """The board's model from the device tree ("Raspberry Pi 4 Model B Rev 1.4"), or None."""
    for path in PI_MODEL_FILES if model_files is None else model_files:
        try:
            return Path(path).read_bytes().rstrip(b"\0").decode("utf-8", "replace").strip()
        except OSError:
            continue
    return None


def gpio_chip_path(model: str | None, chip_dir: str | None = None) -> str:
    """The chip gpiozero's lgpio factory opens: gpiochip4 on a Pi 5 whose kernel has it, else gpiochip0."""
    chip_dir = GPIO_CHIP_DIR if chip_dir is None else chip_dir
    chip4 = os.path.join(chip_dir, "gpiochip4")
    if model and "Raspberry Pi 5" in model and os.path.exists(chip4):
        return chip4
    return os.path.join(chip_dir, "gpiochip0")


def chip_problem(chip_dir: str | None = None, model_files=None) -> str | None:
    """Why the header's GPIO chip cannot be used, as "<chip>: <reason>" (no such device, permission
    denied and how to fix it, not a Raspberry Pi); None when nothing is wrong with it."""
    model = pi_model(model_files)
    chip = gpio_chip_path(model, chip_dir)
    not_pi = model is None or "Raspberry Pi" not in model
    board = "no board model in /proc/device-tree" if model is None else repr(model)
    if not os.path.exists(chip):
        if not_pi:
            return f"{chip}: no such device; this is not a Raspberry Pi ({board}): use --simulate"
        return f"{chip}: no such device on this {model} (is the GPIO driver loaded?)"
    if not os.access(chip, os.R_OK | os.W_OK, effective_ids=os.access in os.supports_effective_ids):
        user = _name(pwd.getpwuid, os.geteuid())
        group = _name(grp.getgrgid, os.stat(chip).st_gid)
        return (
            f"{chip}: permission denied for user {user} (the chip belongs to group {group}: "
            f"sudo usermod -aG {group} {user}, then log in again)"
        )
    if not_pi:
        return f"{chip}: this is not a Raspberry Pi ({board}): use --simulate"
    return None


def _name(lookup, ident: int) -> str:
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def make_pin_factory(name: str = "", *, simulate: bool = False):
    """A gpiozero pin factory by name, or gpiozero's own first choice that works (lgpio on a Pi)."""
    name = "mock" if simulate else (name or os.environ.get("GPIOZERO_PIN_FACTORY", ""))
    if not name:
        from gpiozero import Device
        from gpiozero.exc import BadPinFactory

        with warnings.catch_warnings(record=True) as tried:
            warnings.simplefilter("always")
            try:
                return Device._default_pin_factory()
            except BadPinFactory:
                reasons = "; ".join(str(w.message) for w in tried)
                raise GpioError(
                    f"gpio: {chip_problem() or 'no pin factory works on this machine'} (tried: {reasons})"
                ) from None
    if name.lower() == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        return MockFactory(pin_class=MockPWMPin)  # PWM pins so pulsing LED cues work too
    for ep in entry_points(group="gpiozero_pin_factories"):
        if ep.name.lower() == name.lower():
            try:
                factory_class = ep.load()
            except ImportError as exc:
                raise GpioError(f"gpio.pin_factory {name!r}: its library is not installed ({exc})") from None
            try:
                return factory_class()
            except Exception as exc:
                # lgpio says only "can not open gpiochip": name the chip and the reason instead
                problem = chip_problem()
                raise GpioError(
                    f"gpio.pin_factory {name!r}: cannot start: {problem or f'{type(exc).__name__}: {exc}'}"
                ) from None
    raise GpioError(f"gpio.pin_factory {name!r}: unknown (try lgpio, rpigpio, native or mock)")


class _Input:
    """One debounced Button and the mapping from its pressed state to an input value."""

    def __init__(self, name, button, bounce_s, deliver):
        self.name = name
        self.button = button
        self.bounce_s = bounce_s
        self._deliver = deliver
        self._lock = threading.Lock()
        self._timer = None
        self._first_t = None
        self.pressed = button.is_pressed  # last delivered level
        button.when_activated = self._raw
        button.when_deactivated = self._raw

    def _raw(self, *_):
        now = time.monotonic()
        if self.bounce_s <= 0:
            self._settle(now)
            return
        with self._lock:
            if self._first_t is None:
                self._first_t = now
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.bounce_s, self._settle, (None,))
            self._timer.daemon = True
            self._timer.start()

    def _settle(self, t):
        with self._lock:
            t = t if t is not None else self._first_t
            self._first_t, self._timer = None, None
            try:
                pressed = self.button.is_pressed
            except Exception:  # closed while the timer ran
                return
            if pressed == self.pressed:
                return  # a glitch that came back to where it was
            self.pressed = pressed
        self._deliver(self, t, pressed)

    def close(self):
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None
        self.button.close()


class GpioInputs:
    """Hook, mute and ring inputs; `on_edge(t_monotonic_s, name, value)` is called per edge."""

    def __init__(self, settings: GpioSettings, on_edge, *, pin_factory=None, ring_pin: int | None = None):
        from gpiozero import Button
        from gpiozero.exc import GPIOZeroError

        self.settings = settings
        self._on_edge = on_edge
        self._inputs: dict[str, _Input] = {}
        self.muted = False
        pins = {"hook": (settings.hook_pin, settings.hook_pull_up), "mute": (settings.mute_pin, settings.mute_pull_up)}
        ring_pin = settings.ring_pin if ring_pin is None else ring_pin
        if ring_pin >= 0:
            pins["ring"] = (ring_pin, settings.ring_pull_up)
        try:
            for name, (pin, pull_up) in pins.items():
                # bounce_time=None: the settle timer in _Input does the debouncing.
                button = Button(pin, pull_up=pull_up, bounce_time=None, pin_factory=pin_factory)
                self._inputs[name] = _Input(name, button, settings.bounce_s, self._deliver)
        except (GPIOZeroError, OSError, RuntimeError) as exc:
            self.close()
            raise GpioError(f"gpio.{name}_pin {pin}: cannot set up ({exc})") from None

    # Input values as the station expects them.
    def hook_off(self) -> bool:
        inp = self._inputs["hook"]
        return inp.pressed == self.settings.hook_off_when_pressed

    def initial(self) -> dict:
        """The levels at start: {"hook_off": bool, "muted": bool}."""
        if not self.settings.mute_toggle:
            self.muted = self._inputs["mute"].pressed
        return {"hook_off": self.hook_off(), "muted": self.muted}

    def _deliver(self, inp: _Input, t: float, pressed: bool):
        value: str | bool
        if inp.name == "hook":
            value = "off" if pressed == self.settings.hook_off_when_pressed else "on"
        elif inp.name == "mute":
            if self.settings.mute_toggle:
                if not pressed:
                    return  # releasing a toggle key changes nothing
                self.muted = not self.muted
            else:
                self.muted = pressed
            value = self.muted
        else:
            value = pressed
        self._on_edge(t, inp.name, value)

    @property
    def names(self) -> tuple:
        return tuple(self._inputs)

    def pin(self, name: str):
        """The gpiozero pin of an input (a MockPin under --simulate, for drive_low/drive_high)."""
        return self._inputs[name].button.pin

    def drive(self, name: str, value) -> None:
        """Simulate: move a mock pin so the input reads `value` (hook "on"/"off", mute/ring bool).

        A toggle mute key is pressed and released (after the bounce time) when the
        wanted hold state differs from the current one.
        """
        inp, s = self._inputs[name], self.settings
        if name == "hook":
            pressed = (value == "off") == s.hook_off_when_pressed
        elif name == "mute" and s.mute_toggle:
            if bool(value) == self.muted:
                return
            self._set_pressed(inp, True)
            release = threading.Timer(max(2 * inp.bounce_s, 0.02), self._set_pressed, (inp, False))
            release.daemon = True
            release.start()
            return
        else:
            pressed = bool(value)
        self._set_pressed(inp, pressed)

    @staticmethod
    def _set_pressed(inp: _Input, pressed: bool):
        pin = inp.button.pin
        if pin is None:
            return
        # Button: pull-up means pressed = low; pull-down means pressed = high.
        low = pressed == inp.button.pull_up
        pin.drive_low() if low else pin.drive_high()

    def close(self) -> None:
        inputs, self._inputs = self._inputs, {}
        for inp in inputs.values():
            inp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def led_chase(leds_settings, pin_factory=None, on_s: float = 0.3) -> tuple[list, list]:
    """Light each LED of the tower (or each RGB channel) in turn, for selftest.

    Returns (names, pins) so a simulated run can check the mock pins' state history.
    """
    from gpiozero import LED
    from gpiozero.exc import GPIOZeroError

    s = leds_settings
    if s.kind == "rgb":
        named = list(zip(("red", "green", "blue"), s.rgb_pins, strict=True))  # rgb_pins: three, checked
    else:
        named = [("green", s.green_pin), ("amber", s.amber_pin), ("red", s.red_pin)]
    leds = []
    try:
        for name, pin in named:  # noqa: B007 (name is reported if a pin fails)
            leds.append(LED(pin, active_high=s.active_high, pin_factory=pin_factory))
        pins = [led.pin for led in leds]
        for led in leds:
            led.on()
            time.sleep(on_s)
            led.off()
    except (GPIOZeroError, OSError, RuntimeError) as exc:
        raise GpioError(f"leds: GPIO{pin} ({name}) cannot be driven ({exc})") from None
    finally:
        for led in leds:
            led.close()
    return [n for n, _ in named], pins
