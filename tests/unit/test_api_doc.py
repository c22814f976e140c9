"""docs/api.md covers the schema, and every GraphQL example of it and of the README is valid.

The examples' answers are checked against a real server in tests/e2e/test_api_doc.py (docs/api.md) and
tests/e2e/test_readme_walkthrough.py (the README).
"""

from __future__ import annotations

import graphql
import pytest

from app.cli import schema_sdl
from tests.doc_examples import API_DOC, README, ROLES, Block, Example, examples, read_blocks

SCHEMA = graphql.build_schema(schema_sdl())
# Each root type's fields are documented under the `##` section of this title.
SECTIONS = {"Query": "Queries", "Mutation": "Mutations", "Subscription": "Subscriptions"}
GRAPHQL_BLOCKS = [b for path in (API_DOC, README) for b in read_blocks(path) if b.lang == "graphql"]
EXAMPLES = examples(API_DOC)


def root_fields() -> list[tuple[str, str]]:
    """(section title, field name) of every field of Query, Mutation and Subscription."""
    found = []
    for type_name, section in SECTIONS.items():
        root = SCHEMA.get_type(type_name)
        assert isinstance(root, graphql.GraphQLObjectType)
        found += [(section, name) for name in root.fields]
    return found


@pytest.mark.parametrize("block", GRAPHQL_BLOCKS, ids=lambda b: f"{b.section}-line{b.line}")
def test_every_graphql_block_is_valid_against_the_schema(block: Block) -> None:
    errors = graphql.validate(SCHEMA, graphql.parse(block.text))
    assert not errors, f"{block.where}: {[e.message for e in errors]}"


def test_every_root_field_has_its_section_and_no_section_is_stale() -> None:
    headings = {(b.section, b.heading) for b in read_blocks(API_DOC) if b.section in SECTIONS.values()}

    assert headings == set(root_fields())


@pytest.mark.parametrize(("section", "name"), root_fields(), ids=lambda v: str(v))
def test_every_root_field_has_one_runnable_example(section: str, name: str) -> None:
    found = [e for e in EXAMPLES if e.block.section == section and e.block.heading == name]

    assert [e.fields for e in found] == [[name]], f"docs/api.md, {name}: one runnable example of {name}"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e.fields[0]}-line{e.block.line}")
def test_every_example_documents_its_variables_and_answer(example: Example) -> None:
    assert example.role in ROLES, f"{example.block.where}: run as one of {ROLES}"
    documented = sorted(example.variables or {})
    assert documented == sorted(example.declared), f"{example.block.where}: variables {documented}"
    assert example.response is not None, f"{example.block.where}: no answer documented"
    assert list(example.response["data"]) == example.fields, f"{example.block.where}: answer of another field"
