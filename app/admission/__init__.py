"""Admission control: what a request may cost, and who pays for it."""
