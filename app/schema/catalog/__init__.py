"""schema/catalog."""
