"""CPU time of admission control before validation: parse (cached), analyse and check one operation.

Usage:
    python bench/admission.py [--iterations 20000]

No server: the analysis runs in this process against the schema `build_schema()` makes, with the
default settings. Each case is timed with time.process_time over many calls; every call gets its own
copy of the query text (as a request would), so the parse cache pays for hashing it. Accepted queries
run parse + analyse + check; refused documents are refused by whichever step comes first. Prints a table.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from typing import Any

from _graphql import BOOKS
from graphql import GraphQLSchema

from app.admission import Limits, QueryTooComplex, analyse, check, parse_limited
from app.schema import build_schema
from app.settings import Settings

BOOK_BY_ID = "query($id: ID!) { book(id: $id) { id name price status version } }"
BOOK_ID = {"id": "01890a5d-ac96-774b-bcce-b302099a8057"}
ALIAS = "books(first: 100) { edges { node { id name price authors { name } category { name } } } }"
# The bytes of query text copied for one case, at most: keeps the large documents to a few seconds.
COPIED_BYTES = 5_000_000


def alias_attack(count: int) -> str:
    """Return one query of `count` aliases of a full books page (1,000: about 145 KB)."""
    return "{ " + " ".join(f"a{i}: {ALIAS}" for i in range(count)) + " }"


def fragment_bomb(levels: int) -> str:
    """Return a query whose fragment i spreads fragment i+1 twice: 2^levels fields, once expanded."""
    fragments = " ".join(f"fragment F{i} on Query{{...F{i + 1} ...F{i + 1}}}" for i in range(levels))
    return f"{{...F0}} {fragments} fragment F{levels} on Query{{__typename}}"


def wide(size: int) -> str:
    """Return a document of about `size` bytes of aliases."""
    return "{" + " ".join(f"a{i}:id" for i in range(size // 8)) + "}"


Admit = Callable[[str], str]


def admitter(schema: GraphQLSchema, settings: Settings, variables: Mapping[str, Any] | None) -> Admit:
    """Return what admission does with one query text: "accepted", or the limit that refused it."""
    limits = Limits.from_settings(settings)

    def admit(query: str) -> str:
        try:
            document = parse_limited(query, settings.max_query_tokens)
            analysis = analyse(
                schema, document, None, variables, list_size_estimate=settings.list_size_estimate
            )
            check(analysis, limits)
        except QueryTooComplex as error:
            return f"refused: {error.limit}"
        return f"accepted, cost {analysis.cost}"

    return admit


def measure(admit: Admit, query: str, iterations: int) -> tuple[str, float, int]:
    """Return the outcome, the CPU microseconds per call, and the calls timed."""
    outcome = admit(query)  # warms the parse cache, as the second request of a query would find it
    iterations = max(10, min(iterations, COPIED_BYTES // len(query)))
    copies = [query.encode().decode() for _ in range(iterations)]
    start = time.process_time()
    for copy in copies:
        admit(copy)
    return outcome, (time.process_time() - start) / iterations * 1e6, iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()
    settings = Settings()
    schema = build_schema(settings)._schema
    cases = [
        ("book(id) by variable", BOOK_BY_ID, BOOK_ID),
        ("books page (bench/_graphql.py BOOKS)", BOOKS, {"search": "river"}),
        ("1,000 aliases of a books page", alias_attack(1_000), None),
        ("fragment bomb, 30 levels", fragment_bomb(30), None),
        ("1 MB of aliases", wide(1_000_000), None),
    ]
    header = f"{'case':<40}{'bytes':>10}{'calls':>8}{'cpu us/call':>13}  outcome"
    print(header)
    print("-" * len(header))
    for name, query, variables in cases:
        outcome, micros, calls = measure(admitter(schema, settings, variables), query, args.iterations)
        print(f"{name:<40}{len(query):>10}{calls:>8}{micros:>13.1f}  {outcome}")


if __name__ == "__main__":
    main()
