"""The simulated desk: scenario files (`scenario`), WAV input/output (`wav`), the speech corpus
built from the Asterisk voice prompts (`speech`) and the demo call (`demo`). Used by `replay`,
`run --simulate`, the tests and the benchmarks; no hardware.
"""
