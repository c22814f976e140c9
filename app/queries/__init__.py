"""Read functions over the read models; they never touch aggregates or events."""
