"""The station's configuration: typed, validated settings (`settings`), the service profiles
shipped as package data (`profiles`, `profiles/*.toml`), the LED cue tables and patterns
(`leds`), and comment-keeping config rewrites (`edit`, used by calibrate).
"""
