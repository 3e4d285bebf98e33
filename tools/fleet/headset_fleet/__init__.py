"""Central-side tools for a fleet of headset stations: the `headset-fleet` command.

A distribution of its own (tools/fleet/pyproject.toml), never installed on a station. From
the station's package it uses only the shared protocol (`firmware.protocol`: topics, the
event envelope, broker URLs) and the station config schema (`firmware.config`, so that
`provision` writes configs `check-config` accepts).

- `provision`: inventory CSV -> per-station config, broker password file and ACL, TLS certs.
- `monitor`: live view of every station from the broker's retained status/state and events.
- `collector` + `store`: a shared-subscription consumer that stores events, deduplicated by id.
- `report`: a day per site, desk and agent in local time, from the store (table, CSV, PNG, HTML).
- `loadgen`: many simulated stations publishing realistic event streams.

"""
