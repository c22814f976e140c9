"""Commands: dataclasses (catalog.py), their handlers, and the command bus (bus.py)."""
