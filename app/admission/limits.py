"""The limits an analysed operation must stay within, and the typed error of one it passes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.admission.analysis import Analysis
    from app.settings import Settings

CODE = "QUERY_TOO_COMPLEX"
# Fragment bombs make figures with hundreds of digits: responses and log lines show a bound instead.
LARGEST_SHOWN = 10**18
# What each limit measures, and the setting that bounds it.
_WHAT = {
    "depth": ("depth", "BOOKWORM_MAX_QUERY_DEPTH"),
    "aliases": ("number of aliases", "BOOKWORM_MAX_QUERY_ALIASES"),
    "fields": ("number of fields", "BOOKWORM_MAX_QUERY_FIELDS"),
    "cost": ("cost", "BOOKWORM_MAX_QUERY_COST"),
    "tokens": ("number of tokens", "BOOKWORM_MAX_QUERY_TOKENS"),
    "comments": ("number of comments", "BOOKWORM_MAX_QUERY_TOKENS"),
    "length": ("length in characters", "BOOKWORM_MAX_QUERY_TOKENS"),
}
_ADVICE = {
    "depth": "Nest fewer fields, or split the query.",
    "cost": "Ask for fewer items with `first`, or split the query.",
}
_SPLIT = "Send a smaller query, or split it."


def shown(value: int | None) -> int | str | None:
    """Return a figure as it may be printed: astronomically large ones as a bound."""
    if value is not None and value > LARGEST_SHOWN:
        return "more than 10^18"
    return value


class QueryTooComplex(Exception):
    """An operation passes a limit of its size or cost; it is refused before validation and execution."""

    def __init__(self, limit: str, value: int | None, maximum: int) -> None:
        self.limit = limit
        self.value = value
        self.maximum = maximum
        what, setting = _WHAT[limit]
        figure = f"is {shown(value)}" if value is not None else f"is more than {maximum}"
        advice = _ADVICE.get(limit, _SPLIT)
        self.message = (
            f"The query's {what} {figure}; the most allowed is {maximum} (setting {setting}). {advice}"
        )
        super().__init__(self.message)

    def extensions(self) -> dict[str, Any]:
        """Return the error's `extensions` for a GraphQL response."""
        return {"code": CODE, "limit": self.limit, "value": shown(self.value), "maximum": self.maximum}


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The most depth, aliases, fields and cost an operation may have."""

    max_depth: int
    max_aliases: int
    max_fields: int
    max_cost: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """Read the limits from the settings."""
        return cls(
            max_depth=settings.max_query_depth,
            max_aliases=settings.max_query_aliases,
            max_fields=settings.max_query_fields,
            max_cost=settings.max_query_cost,
        )


def check(analysis: Analysis, limits: Limits) -> None:
    """Raise QueryTooComplex for the first figure of the analysis that passes its limit."""
    figures = (
        ("depth", analysis.depth, limits.max_depth),
        ("aliases", analysis.aliases, limits.max_aliases),
        ("fields", analysis.fields, limits.max_fields),
        ("cost", analysis.cost, limits.max_cost),
    )
    for limit, value, maximum in figures:
        if value > maximum:
            raise QueryTooComplex(limit, value, maximum)
