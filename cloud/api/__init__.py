"""The FastAPI operations API (``create_app(settings)``)."""
