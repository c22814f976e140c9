"""Admission's answers kept per parsed document: reused only while what they depend on is the same."""

from __future__ import annotations

import pytest
from graphql import GraphQLSchema

from app.admission import analyse, memo, parse_limited
from app.schema import build_schema

PAGE = "query($n: Int, $id: ID) { books(first: $n) { edges { node { id } } } book(id: $id) { id } }"


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_schema()._schema


# In turn on one document: kept answers must match fresh ones whatever changed in between.
SEQUENCE: list[dict[str, object] | None] = [
    {"n": 3, "id": "a"},
    {"n": 3, "id": "b"},
    {"n": 7},
    {"id": "c"},
    {"n": None},
    {"n": 3.0},
    None,
    {"n": 7},
]


def test_a_kept_analysis_answers_as_a_fresh_one_for_any_variables(schema: GraphQLSchema) -> None:
    document = parse_limited(PAGE, 5_000)
    for given in SEQUENCE:
        kept = memo.analysis(schema, document, None, given, list_size_estimate=5)
        assert kept == analyse(schema, document, None, given, list_size_estimate=5), given


def test_a_kept_analysis_is_reused_while_its_first_variables_keep_their_values(schema: GraphQLSchema) -> None:
    document = parse_limited(PAGE, 5_000)
    first = memo.analysis(schema, document, None, {"n": 4, "id": "a"}, list_size_estimate=5)
    assert memo.analysis(schema, document, None, {"n": 4, "id": "b"}, list_size_estimate=5) is first
    assert memo.analysis(schema, document, None, {"n": 5, "id": "a"}, list_size_estimate=5) is not first


def test_validation_is_kept_per_document_object(schema: GraphQLSchema) -> None:
    document = parse_limited("{ nothing }", 5_000)
    errors = memo.validation(schema, document)
    assert [e.message for e in errors] == ["Cannot query field 'nothing' on type 'Query'."]
    assert memo.validation(schema, document) is errors
