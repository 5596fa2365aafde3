"""Time-series stores for events and telemetry, behind one interface (``EventStore``)."""
