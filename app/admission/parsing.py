"""Parse a query with bounded work: a document past a size limit is refused while it is read."""

from __future__ import annotations

from collections import OrderedDict

from graphql import DocumentNode, GraphQLSyntaxError, parse

from app.admission.limits import QueryTooComplex

CACHE_SIZE = 1024
# A parsed document takes about 400 bytes per token (nodes, locations and the tokens they point at),
# so the cache is bounded by tokens too: 1,024 documents of the largest size would take 2 GB.
CACHE_TOKENS = 100_000
# The longest source accepted, per allowed token: room for indentation, comments and string literals,
# while a refused document costs no more than reading that much (with 5,000 tokens, 160,000 characters).
CHARACTERS_PER_TOKEN = 32
_ABORTED = " Parsing aborted."


class DocumentCache:
    """The most recently used parsed documents, within a number of entries and of tokens."""

    def __init__(self, size: int, tokens: int) -> None:
        self.size = size
        self.tokens = tokens
        self._held = 0
        self._documents: OrderedDict[tuple[str, int], tuple[DocumentNode, int]] = OrderedDict()

    def get(self, key: tuple[str, int]) -> DocumentNode | None:
        """Return a cached document, now the most recently used, or None."""
        found = self._documents.get(key)
        if found is None:
            return None
        self._documents.move_to_end(key)
        return found[0]

    def put(self, key: tuple[str, int], document: DocumentNode) -> None:
        """Keep a document, dropping the least recently used ones past the bounds."""
        # graphql-core records the tokens read on the document; the text's length bounds them otherwise.
        tokens = getattr(document, "token_count", len(key[0]))
        if tokens > self.tokens or key in self._documents:
            return
        self._documents[key] = (document, tokens)
        self._held += tokens
        while len(self._documents) > self.size or self._held > self.tokens:
            self._held -= self._documents.popitem(last=False)[1][1]


_cache = DocumentCache(CACHE_SIZE, CACHE_TOKENS)


def parse_limited(query: str, max_tokens: int) -> DocumentNode:
    """Parse a query of at most max_tokens tokens and as many comments; raise QueryTooComplex past them."""
    max_length = max_tokens * CHARACTERS_PER_TOKEN
    # Checked before the cache, so that a huge refused document is not even hashed.
    if len(query) > max_length:
        raise QueryTooComplex("length", len(query), max_length)
    key = (query, max_tokens)
    document = _cache.get(key)
    if document is None:
        # Only parsed documents are kept: a refused one raises before it reaches the cache.
        document = _parse(query, max_tokens)
        _cache.put(key, document)
    return document


def parsed_before(query: str, max_tokens: int) -> DocumentNode | None:
    """Return the document parse_limited kept for this query, or None: nothing is parsed or refused."""
    if len(query) > max_tokens * CHARACTERS_PER_TOKEN:
        return None
    return _cache.get((query, max_tokens))


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
