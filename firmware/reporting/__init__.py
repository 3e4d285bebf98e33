"""Getting events off the desk: the durable SQLite outbox (`outbox`, also the persisted `seq`),
the MQTT reporter that publishes birth/state/telemetry and drains the outbox (`reporter`,
with its publishing thread in `sender`), and the remote commands (`commands`).
"""
