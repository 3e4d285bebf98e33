"""Per-channel audio analysis: WebRTC VAD with smoothing (`vad`), levels and the noise floor
(`levels`), the line condition (`linestate`), call-progress tones (`tones`), the agent's echo
on the customer channel (`echo`), all put together
by `analyzer.ChannelAnalyzer`, which turns audio blocks into sparse `edges`. `measure` gives
a recording's figures (and tx->rx coupling) for selftest and calibrate. The first stage of the pipeline: it knows
nothing of calls, rules or the network.
"""
