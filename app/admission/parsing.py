"""Parse a query with bounded work: a document past a size limit is refused while it is read."""

from __future__ import annotations

from functools import lru_cache

from graphql import DocumentNode, GraphQLSyntaxError, parse

from app.admission.limits import QueryTooComplex

CACHE_SIZE = 1024
# The longest source accepted, per allowed token: room for indentation, comments and string literals,
# while a refused document costs no more than reading that much (with 5,000 tokens, 160,000 characters).
CHARACTERS_PER_TOKEN = 32
_ABORTED = " Parsing aborted."


def parse_limited(query: str, max_tokens: int) -> DocumentNode:
    """Parse a query of at most max_tokens tokens and as many comments; raise QueryTooComplex past them."""
    max_length = max_tokens * CHARACTERS_PER_TOKEN
    # Checked before the cache, so that a huge refused document is not even hashed.
    if len(query) > max_length:
        raise QueryTooComplex("length", len(query), max_length)
    return _parse(query, max_tokens)


# Only parsed documents are kept: a refused one raises, which lru_cache does not remember.
@lru_cache(maxsize=CACHE_SIZE)
def _parse(query: str, max_tokens: int) -> DocumentNode:
    try:
        return parse(
            query,
            max_lexical_tokens=max_tokens,
            max_comments=max_tokens,
            max_source_length=max_tokens * CHARACTERS_PER_TOKEN,
        )
    except GraphQLSyntaxError as error:
        refusal = _past_limit(error, max_tokens)
        if refusal is None:
            raise
        raise refusal from None


def _past_limit(error: GraphQLSyntaxError, max_tokens: int) -> QueryTooComplex | None:
    """Tell the refusals for size from the syntax errors; graphql-core raises both as syntax errors."""
    for limit in ("tokens", "comments"):
        if error.message.endswith(f"more than {max_tokens} {limit}.{_ABORTED}"):
            return QueryTooComplex(limit, None, max_tokens)
    return None
