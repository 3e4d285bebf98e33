"""Hardware access and its stand-ins: GPIO inputs and LEDs through gpiozero (`gpio`, `leds`),
audio capture through PyAudio or silence (`audio`).

Backends are chosen by configuration (`audio.backend`, `gpio.pin_factory`), never by import.
`hal` imports nothing of the station's logic: only `firmware.errors` and the settings types
and LED patterns of `firmware.config`.
"""
