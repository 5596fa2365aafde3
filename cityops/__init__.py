"""The ``cityops`` command line: one entry point wiring every component's commands."""
