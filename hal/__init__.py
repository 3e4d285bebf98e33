"""Hardware access and its stand-ins: GPIO through gpiozero, audio through PyAudio, WAV and scenario files.

Backends are chosen by configuration (`audio.backend`, `gpio.pin_factory`), never by import.
"""
