"""CityOps cloud side: ingest, stores, operations API, broker security, integrations."""
