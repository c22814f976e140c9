"""Alembic environment and versions (packaged so `bookworm migrate` finds them when installed)."""
