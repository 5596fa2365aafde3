"""Mutable state in SQL through SQLAlchemy (SQLite by default, PostgreSQL by URL)."""
