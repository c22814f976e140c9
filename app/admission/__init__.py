"""Admission control: measure an operation before it is validated or run, refuse what is too big, and
charge the rest to the budget of whoever sends it."""

from app.admission.analysis import Analysis, analyse
from app.admission.limits import Limits, QueryTooComplex, check
from app.admission.parsing import parse_limited

__all__ = ["Analysis", "Limits", "QueryTooComplex", "analyse", "check", "parse_limited"]
