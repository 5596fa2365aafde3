"""Connectors that bring other city systems' records in as CityOps events (issue #9)."""
