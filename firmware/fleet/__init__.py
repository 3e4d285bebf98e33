"""Technician and central-side tools for a fleet of headset stations (issue 6).

- `provision`: inventory CSV -> per-station config, broker password file and ACL, TLS certs.
- `monitor`: live view of every station from the broker's retained status/state and events.
- `collector` + `store`: a shared-subscription consumer that stores events, deduplicated by id.
- `report`: daily per-station and per-site figures from the store (table, CSV, PNG).
- `loadgen`: many simulated stations publishing realistic event streams.

`cli.add_subcommands` hangs these under the `headset-station` command.
"""
