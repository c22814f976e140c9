"""Admission analysis: figures of operations, fragment bombs and cycles, bounded parsing, limits."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import GraphQLSchema, GraphQLSyntaxError, get_introspection_query, parse

from app.admission import Analysis, Limits, QueryTooComplex, analyse, check, parse_limited
from app.admission.parsing import DocumentCache
from app.schema import build_schema
from app.settings import Settings

BOOK = '{ book(id: "01890a5d-ac96-774b-bcce-b302099a8057") { id name price status version } }'
PAGE = "{ edges { node { id name } } }"  # a connection's selection: costs 1 + 1 per page item
ALIAS = "books(first: 100) { edges { node { id name price authors { name } category { name } } } }"
TOKENS = 5_000
LIMITS = Limits(max_depth=12, max_aliases=50, max_fields=1_000, max_cost=1_000)


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_schema()._schema


def measure(
    schema: GraphQLSchema,
    query: str,
    variables: dict[str, Any] | None = None,
    operation: str | None = None,
    max_tokens: int = TOKENS,
) -> Analysis:
    document = parse_limited(query, max_tokens)
    return analyse(schema, document, operation, variables, list_size_estimate=5)


def bomb(levels: int, last: str = '__typename book(id: "1") { id }') -> str:
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    return f"query {{ ...F0 }} {fragments} fragment F{levels} on Query {{ {last} }}"


def test_a_book_by_id_costs_one_at_depth_two(schema: GraphQLSchema) -> None:
    assert measure(schema, BOOK) == Analysis(
        depth=2, aliases=0, fields=6, cost=1, mutation_fields=0, operation_type="query", introspection=False
    )


def test_a_books_page_costs_its_default_page_size_from_the_schema(schema: GraphQLSchema) -> None:
    analysis = measure(schema, "{ books " + PAGE + " }")
    assert (analysis.cost, analysis.depth, analysis.fields) == (20 * 3, 4, 5)


@pytest.mark.parametrize(
    ("query", "variables", "size"),
    [
        ("{ books(first: 3) %s }", None, 3),
        ("query($n: Int) { books(first: $n) %s }", {"n": 7}, 7),
        ("query($n: Int = 4) { books(first: $n) %s }", None, 4),
        ("query($n: Int = 4) { books(first: $n) %s }", {"n": None}, 20),  # explicit null: the default
        ("query($n: Int) { books(first: $n) %s }", {}, 20),
        ("{ books(first: null) %s }", None, 20),
        ("{ books(first: -5) %s }", None, 1),
        ("{ books(first: 0) %s }", None, 1),
        ("{ books(first: 99999999999999999999999999999) %s }", None, 10_000),
        ("query($n: Int) { books(first: $n) %s }", {"n": 10**40}, 10_000),
        ("query($n: Int) { books(first: $n) %s }", {"n": "many"}, 5),
        ('{ books(first: "many") %s }', None, 5),
        ("query($n: Int) { books(first: $n) %s }", ["n", 7], 20),  # not an object: no variables
    ],
)
def test_first_is_the_literal_else_the_variable_else_a_default_within_bounds(
    schema: GraphQLSchema, query: str, variables: Any, size: int
) -> None:
    assert measure(schema, query % PAGE, variables).cost == size * 3


def test_a_list_without_first_counts_the_estimate_but_a_connections_edges_do_not(
    schema: GraphQLSchema,
) -> None:
    assert measure(schema, '{ book(id: "1") { authors { name } } }').cost == 1 + 5
    connection = '{ author(id: "1") { books(first: 2) { edges { node { authors { name } } } } } }'
    assert measure(schema, connection).cost == 1 + 2 * (1 + 1 * (1 + 1 * (1 + 5)))


def test_aliases_count_and_fragments_multiply(schema: GraphQLSchema) -> None:
    aliased = measure(schema, '{ a: book(id: "1") { id } b: book(id: "2") { n: name } }')
    assert (aliased.aliases, aliased.fields, aliased.cost) == (3, 4, 2)
    spread = measure(schema, 'query { ...F ...F } fragment F on Query { a: book(id: "1") { x: id } }')
    assert (spread.aliases, spread.fields, spread.cost, spread.depth) == (4, 4, 2, 2)


def test_a_fragment_counts_at_the_depth_of_its_spread(schema: GraphQLSchema) -> None:
    query = '{ book(id: "1") { ...B ... on Book { id } } } fragment B on Book { authors { name } }'
    analysis = measure(schema, query)
    assert (analysis.depth, analysis.fields, analysis.cost) == (3, 4, 1 + 5)


def test_a_fragment_bomb_is_measured_once_per_fragment(schema: GraphQLSchema) -> None:
    analysis = measure(schema, bomb(40))
    assert analysis.fields == 2**40 * 3
    assert analysis.cost == 2**40
    with pytest.raises(QueryTooComplex) as refused:
        check(analysis, LIMITS)
    assert refused.value.limit == "fields"


def test_astronomical_figures_are_shown_as_a_bound(schema: GraphQLSchema) -> None:
    with pytest.raises(QueryTooComplex) as refused:
        check(measure(schema, bomb(70)), LIMITS)
    assert refused.value.extensions()["value"] == "more than 10^18"
    assert "more than 10^18" in refused.value.message
    assert len(refused.value.message) < 200


@pytest.mark.parametrize(
    "query",
    [
        'query { ...A } fragment A on Query { ...B book(id: "1") { id } } fragment B on Query { ...A }',
        "query { ...A } fragment A on Query { ...A __typename }",
        '{ book(id: "1") { ...C } } fragment C on Book { authors { books { edges { node { ...C } } } } }',
        "{ ...Unknown }",
        '{ book(id: "1") { ... on Nope { id } ...OnNope } } fragment OnNope on Nope { id }',
    ],
)
def test_cycles_and_unknown_fragments_or_types_end(schema: GraphQLSchema, query: str) -> None:
    analysis = measure(schema, query)
    assert analysis.fields < 10
    assert analysis.operation_type == "query"


def test_a_long_chain_of_fragments_does_not_exhaust_the_stack(schema: GraphQLSchema) -> None:
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(3_000))
    query = f"{{ ...F0 }} {chain} fragment F3000 on Query {{ __typename }}"
    assert measure(schema, query, max_tokens=30_000).fields == 1


def test_the_deepest_document_the_parser_takes_is_walked(schema: GraphQLSchema) -> None:
    query = "{" + "a {" * 190 + "b" + "}" * 191
    assert measure(schema, query).depth == 191


def test_unknown_fields_count_as_plain_fields(schema: GraphQLSchema) -> None:
    analysis = measure(schema, '{ nope { id } book(id: "1") { alsoNope } }')
    assert (analysis.fields, analysis.cost, analysis.depth) == (4, 2, 2)


@pytest.mark.parametrize(
    ("query", "introspection", "depth"),
    [
        ("{ __schema { types { name fields { name } } } }", True, 0),
        ('{ ...I } fragment I on Query { __type(name: "Book") { name } }', True, 0),
        ('{ book(id: "1") { id __typename } __typename }', False, 2),
        ('{ book(id: "1") { ... on Book { __typename } } }', False, 1),
    ],
)
def test_introspection_is_told_and_left_out_of_depth(
    schema: GraphQLSchema, query: str, introspection: bool, depth: int
) -> None:
    analysis = measure(schema, query)
    assert (analysis.introspection, analysis.depth) == (introspection, depth)


def test_the_introspection_query_passes_but_a_nested_one_does_not(schema: GraphQLSchema) -> None:
    check(measure(schema, get_introspection_query(True, True, True, True, True)), LIMITS)
    nested = "{ __schema { types { fields { type { ofType { fields { type { fields { type { fields { name } "
    nested += "} } } } } } } } } }"
    with pytest.raises(QueryTooComplex) as refused:
        check(measure(schema, nested), LIMITS)
    assert refused.value.limit == "cost"


def test_mutation_fields_are_the_root_fields_of_a_mutation(schema: GraphQLSchema) -> None:
    create = 'createAuthor(input: {name: "%s"}) { __typename }'
    query = f"mutation {{ a: {create % 'a'} ...M }} fragment M on Mutation {{ b: {create % 'b'} }}"
    analysis = measure(schema, query)
    assert (analysis.operation_type, analysis.mutation_fields, analysis.aliases) == ("mutation", 2, 2)
    assert measure(schema, BOOK).mutation_fields == 0
    subscription = measure(schema, "subscription { catalogChanged { kind } }")
    assert (subscription.operation_type, subscription.mutation_fields) == ("subscription", 0)


def test_the_named_operation_is_measured_and_the_rest_adds_its_fields(schema: GraphQLSchema) -> None:
    query = 'query A { book(id: "1") { id } } query B { books { x: totalCount } } fragment U on Book { id }'
    named = measure(schema, query, operation="A")
    assert (named.cost, named.fields, named.aliases, named.operation_type) == (1, 2 + 2 + 1, 1, "query")
    for unknown in (None, "C"):
        analysis = measure(schema, query, operation=unknown)
        assert (analysis.operation_type, analysis.cost, analysis.fields) == (None, 1, 5)


def test_a_document_past_the_tokens_is_refused_while_parsed() -> None:
    with pytest.raises(QueryTooComplex) as refused:
        parse_limited("{ " + "id " * 20 + "}", 10)
    assert (refused.value.limit, refused.value.value, refused.value.maximum) == ("tokens", None, 10)
    assert refused.value.extensions() == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": "tokens",
        "value": None,
        "maximum": 10,
    }


def test_comments_and_length_are_bounded_too() -> None:
    with pytest.raises(QueryTooComplex) as comments:
        parse_limited("#\n" * 11 + "{ id }", 10)
    assert comments.value.limit == "comments"
    with pytest.raises(QueryTooComplex) as length:
        parse_limited("{ id }" + " " * 400, 10)
    assert (length.value.limit, length.value.value, length.value.maximum) == ("length", 406, 320)


def test_a_syntax_error_stays_a_syntax_error() -> None:
    with pytest.raises(GraphQLSyntaxError):
        parse_limited("{ book(id: ) }", TOKENS)


def test_a_parsed_document_is_cached() -> None:
    assert parse_limited(BOOK, TOKENS) is parse_limited("".join(BOOK), TOKENS)


def test_the_cache_is_bounded_by_documents_and_by_tokens() -> None:
    cache = DocumentCache(size=2, tokens=12)
    large = "{ " + "a " * 11 + "}"
    documents = {q: parse(q) for q in ("{ a }", "{ b }", "{ c }", "{ a b c d e f }", large)}
    for query, document in documents.items():
        cache.put((query, 9), document)
    assert cache.get(("{ a }", 9)) is None  # the least recently used of three
    assert cache.get((large, 9)) is None  # 13 tokens: never kept
    assert cache.get(("{ a b c d e f }", 9)) is documents["{ a b c d e f }"]
    assert cache.get(("{ c }", 9)) is documents["{ c }"]  # 8 + 3 tokens held
    cache.put(("{ b }", 9), documents["{ b }"])
    assert cache.get(("{ a b c d e f }", 9)) is None  # past 12 tokens: the least recently used goes
    assert cache.get(("{ c }", 9)) is not None


def test_a_megabyte_document_is_refused() -> None:
    query = "{" + " ".join(f"a{i}: id" for i in range(200_000)) + "}"
    assert len(query) > 1_000_000
    with pytest.raises(QueryTooComplex) as refused:
        parse_limited(query, Settings().max_query_tokens)
    assert refused.value.limit == "length"


def test_a_thousand_aliases_of_a_books_page_are_refused(schema: GraphQLSchema) -> None:
    query = "{ " + " ".join(f"a{i}: {ALIAS}" for i in range(1_000)) + " }"
    settings = Settings()
    with pytest.raises(QueryTooComplex):
        parse_limited(query, settings.max_query_tokens)
    analysis = measure(schema, query, max_tokens=100_000)
    assert (analysis.aliases, analysis.cost) == (1_000, 1_000 * 100 * (1 + (1 + (1 + 5 + 1))))
    with pytest.raises(QueryTooComplex) as refused:
        check(analysis, Limits.from_settings(settings))
    assert refused.value.limit == "aliases"


@pytest.mark.parametrize(
    ("limits", "limit"),
    [
        (Limits(max_depth=1, max_aliases=9, max_fields=99, max_cost=99), "depth"),
        (Limits(max_depth=9, max_aliases=0, max_fields=99, max_cost=99), "aliases"),
        (Limits(max_depth=9, max_aliases=9, max_fields=2, max_cost=99), "fields"),
        (Limits(max_depth=9, max_aliases=9, max_fields=99, max_cost=1), "cost"),
    ],
)
def test_check_names_the_first_limit_passed(schema: GraphQLSchema, limits: Limits, limit: str) -> None:
    analysis = measure(schema, '{ a: book(id: "1") { id } b: book(id: "2") { id } }')
    with pytest.raises(QueryTooComplex) as refused:
        check(analysis, limits)
    assert refused.value.limit == limit
    check(analysis, LIMITS)


def test_the_message_tells_the_setting_and_what_to_do() -> None:
    assert QueryTooComplex("cost", 140_000, 1_000).message == (
        "The query's cost is 140000; the most allowed is 1000 (setting BOOKWORM_MAX_QUERY_COST). "
        "Ask for fewer items with `first`, or split the query."
    )


def test_limits_come_from_the_settings() -> None:
    settings = Settings(max_query_depth=3, max_query_aliases=4, max_query_fields=5, max_query_cost=6)
    assert Limits.from_settings(settings) == Limits(max_depth=3, max_aliases=4, max_fields=5, max_cost=6)
