"""The operator console: pages, sign-in and sessions, served by the operations API itself."""
