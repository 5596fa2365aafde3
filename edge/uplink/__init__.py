"""MQTT uplink with a durable outbox: nothing the pipeline emits is lost (issue #4)."""
