"""Headset-station firmware: pure logic on a clock it is given, in layers that depend one way:

    analysis -> station (rules, cues) -> reporting -> runtime (+ tech, the technicians' commands)

with `config` (settings, profiles) and `protocol` (topics, event envelope, broker URLs) shared
by all of them, and `sim` (scenario files, WAV, the speech corpus, the demo) for simulated
desks. Only `runtime` and `tech` touch hardware, through `hal`.
"""

__version__ = "0.1.0"
