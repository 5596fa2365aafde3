"""MQTT -> validated, deduplicated, batched -> EventStore."""
