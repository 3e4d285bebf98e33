"""Headset-station firmware: pure logic (analysis, rules, cues, events, outbox) on a given clock.

Nothing in this package touches hardware; `hal` supplies the sources and the outputs.
"""

__version__ = "0.1.0"
