"""Technicians' commands on a desk: `selftest` (LEDs, inputs, audio, broker) and `calibrate`
(noise floors and gains written into the station config).
"""
