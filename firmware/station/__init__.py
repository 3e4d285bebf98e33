"""The station: what a call is (`call`), its timers on a given clock (`timers`), the service
rules (`rules/`), the cue board (`cues`), and `station.Station`, which turns analysis edges and
GPIO inputs into events. `pipeline.Pipeline` joins the two channel analysers to the station:
the one path from audio and inputs to events, for `replay` and the live service alike.
"""
