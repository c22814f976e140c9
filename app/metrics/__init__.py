"""Prometheus metrics: what each process records (instruments), the /metrics endpoint, and the directory
`bookworm serve` shares with its children so that one scrape sums every process (docs/operations.md,
"Metrics")."""
