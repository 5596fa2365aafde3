"""The one-command demo: broker, ingest + API, provisioned edge agents on real clips, live view."""
