"""Admission control: measure an operation before it is validated or run, and refuse what is too big."""

from app.admission.analysis import Analysis, analyse
from app.admission.limits import Limits, QueryTooComplex, check
from app.admission.parsing import parse_limited

__all__ = ["Analysis", "Limits", "QueryTooComplex", "analyse", "check", "parse_limited"]
