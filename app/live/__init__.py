"""Change notices -> subscribers: broadcaster fan-out, per-process hub, resume."""
