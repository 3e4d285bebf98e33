"""What the station and the central side agree on: MQTT topics and QoS (`topics`), the event
envelope (`envelope`) and broker URLs with their TLS and credentials (`brokers`).

The fleet tools (`headset_fleet`) import this package; keep it free of numpy and hardware.
"""
