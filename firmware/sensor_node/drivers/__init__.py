"""Sensor drivers: byte parsing and signal processing here, bus access through a tiny interface."""
