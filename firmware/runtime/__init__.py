"""The programs: the `headset-station` command (`cli`), the live service on the wall clock
(`service`, `capture`, `liveness`, `sdnotify`, `wiring`, `sources`) and `replay` on a virtual
clock. Only here do the pure logic, the hardware layer (`hal`) and the simulated desk meet.
"""
