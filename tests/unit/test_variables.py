"""Variables coerced by a prepared operation are graphql-core's: the same values and sources for every value
it accepts, its own errors (messages, locations, order) for every value it refuses, on every argument of
the application's schema and on a schema of every kind of input."""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from graphql import (
    DocumentNode,
    GraphQLArgument,
    GraphQLDefaultInput,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    Undefined,
    parse,
    print_ast,
)
from graphql import build_schema as build_sdl
from graphql.execution import Executor as GraphQLCoreExecutor

from app.schema import build_schema
from app.schema.execution import Executor
from app.schema.variables import _PREPARED, prepared
from tests.unit.test_arguments import sample

APP = build_schema()._schema


def built(schema: GraphQLSchema, document: DocumentNode, variables: Any, name: str | None = None) -> Any:
    """What an executor built for `variables` holds that comes from them, or the errors of its build."""
    return _outcome(Executor.build(schema, document, raw_variable_values=variables, operation_name=name))


def graphql_cores(
    schema: GraphQLSchema, document: DocumentNode, variables: Any, name: str | None = None
) -> Any:
    return _outcome(
        GraphQLCoreExecutor.build(schema, document, raw_variable_values=variables, operation_name=name)
    )


def _outcome(executor: Any) -> Any:
    if isinstance(executor, list):
        return [error.formatted for error in executor]
    values = executor.variable_values
    sources = {
        name: (
            source.signature.name,
            str(source.signature.type),
            None if source.signature.default is None else print_ast(source.signature.default.literal),
            repr(source.value),
        )
        for name, source in values.sources.items()
    }
    return repr(values.coerced), sources, executor.operation


def taken(schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any]) -> bool:
    """Whether the prepared operation coerced `variables` itself (graphql-core's build did not run)."""
    operation = prepared(schema, document, None)
    return operation is not None and operation.values(variables, False) is not None


WRONG: list[Any] = [None, "text", 7, 2.5, True, {}, {"no such field": 1}, [], ["text"], [None]]


def variants(type_: GraphQLInputType, value: Any) -> Iterator[Any]:
    """`value` (a good value of `type_`), then values that differ from it in one place each: every wrong
    kind of value in place of the whole, and inside it of each input field and list item; each field left
    out or null; an unknown field; a list's item alone."""
    yield value
    yield from WRONG
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if isinstance(inner, GraphQLList) and isinstance(value, list) and value:
        yield value[0]  # a list of one, given as its item
        for changed in itertools.islice(variants(inner.of_type, value[0]), 1, None):
            yield [changed, *value[1:]]
    if isinstance(inner, GraphQLInputObjectType) and isinstance(value, dict):
        yield {**value, "unknownField": 1}
        for name, field in inner.fields.items():
            yield {key: given for key, given in value.items() if key != name}
            for changed in itertools.islice(variants(field.type, value.get(name)), 1, None):
                yield {**value, name: changed}


def argument_documents(schema: GraphQLSchema) -> Iterator[tuple[str, GraphQLArgument, DocumentNode]]:
    """A document per argument of a root field: the argument given as a variable of its own type."""
    roots = [
        (schema.query_type, "query"),
        (schema.mutation_type, "mutation"),
        (schema.subscription_type, "subscription"),
    ]
    for root, kind in roots:
        assert root is not None
        for field_name, field in root.fields.items():
            for name, argument in field.args.items():
                selection = "" if _is_leaf(field) else " { __typename }"
                text = f"{kind}($v: {argument.type}) {{ {field_name}({name}: $v){selection} }}"
                yield f"{field_name}({name})", argument, parse(text)


def _is_leaf(field: GraphQLField) -> bool:
    type_ = field.type
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return isinstance(type_, GraphQLScalarType | GraphQLEnumType)


def test_every_argument_of_the_schema_takes_graphql_cores_values_and_errors() -> None:
    checked, accepted = 0, 0
    for where, argument, document in argument_documents(APP):
        good = [sample(argument.type, fill=fill) for fill in ("all", "required", "nulls")]
        for value in itertools.chain(*(variants(argument.type, g) for g in good)):
            variables = {"v": value}
            expected = graphql_cores(APP, document, variables)
            assert built(APP, document, variables) == expected, (where, value)
            if not isinstance(expected, list):
                assert taken(APP, document, variables), (where, value)
                accepted += 1
            checked += 1
        assert built(APP, document, {}) == graphql_cores(APP, document, {}), where  # absent
    assert checked > 3000 and accepted > 500


SDL = """
scalar Odd
enum Colour { RED, BLUE }
input Node { value: Int, next: Node, children: [Node!] }
input Choice @oneOf { number: Int, text: String }
input Defaults {
  count: Int! = 3
  tags: [String!] = ["a", "b"]
  inner: Plain = {label: "x"}
  colour: Colour = BLUE
}
input Plain { label: String!, hint: String, colours: [Colour!], grid: [[Int!]]! = [[1]] }
type Query {
  field(
    node: Node, choice: Choice, defaults: Defaults, plain: Plain, odd: Odd, ids: [ID!]
    flag: Boolean, f: Float
  ): String
}
"""


def _odd(value: Any) -> int:
    if not isinstance(value, int) or value % 2 == 0:
        raise ValueError(f"not odd: {value!r}")  # not a GraphQLError: graphql-core refuses it all the same
    return value


def kinds_schema() -> GraphQLSchema:
    schema = build_sdl(SDL)
    odd = schema.type_map["Odd"]
    assert isinstance(odd, GraphQLScalarType)
    odd.coerce_input_value = _odd  # type: ignore[method-assign]
    return schema


def renamed_schema() -> GraphQLSchema:
    """Input fields with an out_name, a deprecated internal default and an out_type."""
    renamed = GraphQLInputObjectType(
        "Renamed",
        {
            "firstName": GraphQLInputField(GraphQLNonNull(GraphQLString), out_name="first_name"),
            "legacy": GraphQLInputField(GraphQLInt, default_value=42),
            "external": GraphQLInputField(GraphQLInt, default=GraphQLDefaultInput(value=5)),
        },
        out_type=lambda value: ("built", sorted(value.items())),
    )
    query = GraphQLObjectType(
        "Query", {"field": GraphQLField(GraphQLString, {"renamed": GraphQLArgument(renamed)})}
    )
    return GraphQLSchema(query)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"value": 1}
    for _ in range(depth):
        value = {"next": value}
    return value


KINDS: list[tuple[str, dict[str, Any] | None]] = [
    ("query($n: Node) { field(node: $n) }", {"n": nested(3)}),
    ("query($n: Node) { field(node: $n) }", {"n": nested(150)}),
    ("query($n: Node) { field(node: $n) }", {"n": nested(250)}),  # nested too deeply
    ("query($n: Node) { field(node: $n) }", {"n": {"children": [nested(2), {"value": "x"}]}}),
    ("query($n: Node!) { field(node: $n) }", {}),
    ("query($n: Node!) { field(node: $n) }", {"n": None}),
    ("query($c: Choice) { field(choice: $c) }", {"c": {"number": 1}}),
    ("query($c: Choice) { field(choice: $c) }", {"c": {"number": 1, "text": "t"}}),
    ("query($c: Choice) { field(choice: $c) }", {"c": {"number": None}}),
    ("query($d: Defaults) { field(defaults: $d) }", {"d": {}}),
    ("query($d: Defaults) { field(defaults: $d) }", {"d": {"count": 1, "tags": "one", "colour": "RED"}}),
    ("query($d: Defaults) { field(defaults: $d) }", {"d": {"count": None}}),
    ("query($d: Defaults) { field(defaults: $d) }", {"d": {"colour": "GREEN"}}),
    ("query($d: Defaults) { field(defaults: $d) }", {"d": {"inner": {"label": "y", "grid": [1, [2, 3]]}}}),
    ("query($d: Defaults) { field(defaults: $d) }", {"d": {"inner": {"label": "y", "grid": [[None]]}}}),
    ('query($p: Plain = {label: "v"}) { field(plain: $p) }', {}),
    ('query($p: Plain = {label: "v"}) { field(plain: $p) }', {"p": None}),
    ('query($p: Plain = {label: "v"}) { field(plain: $p) }', {"p": {"label": "w", "colours": "RED"}}),
    ("query($p: Plain = {label: 5}) { field(plain: $p) }", {}),  # an invalid default, not validated here
    ('query($i: [ID!] = ["a", 2]) { field(ids: $i) }', {}),
    ('query($i: [ID!] = ["a", 2]) { field(ids: $i) }', {"i": [3, 4.0, "x"]}),
    ("query($i: [ID!]) { field(ids: $i) }", {"i": [4.5]}),
    ("query($i: [ID!]) { field(ids: $i) }", {"i": ("a", "b")}),
    ("query($i: [ID!]) { field(ids: $i) }", {"i": "single"}),
    ("query($o: Odd, $f: Float) { field(odd: $o, f: $f) }", {"o": 3, "f": 2}),
    ("query($o: Odd, $f: Float) { field(odd: $o, f: $f) }", {"o": 4, "f": "2"}),
    ("query($o: Odd!, $b: Boolean!, $f: Float!) { field(odd: $o, flag: $b, f: $f) }", {"b": 1}),
    ("query($o: Odd, $b: Boolean) { field(odd: $o, flag: $b) }", None),
    ("query($x: Query) { field }", {}),  # not an input type
    ("query($o: Odd) { field(odd: $o) } query B { field }", {"o": 1}),  # which operation: none named
    ("query A($o: Odd) { field(odd: $o) } query B { field }", {"o": 1}),
]


@pytest.mark.parametrize(("document", "variables"), KINDS)
def test_every_kind_of_input_takes_graphql_cores_values_and_errors(
    document: str, variables: dict[str, Any] | None
) -> None:
    schema, parsed = kinds_schema(), parse(document)
    for name in (None, "A", "B", "C"):
        assert built(schema, parsed, variables, name) == graphql_cores(schema, parsed, variables, name)


def test_values_given_in_python_take_graphql_cores_values_and_errors() -> None:
    schema, document = kinds_schema(), parse("query($p: Plain, $i: [ID!]) { field(plain: $p, ids: $i) }")
    given: list[Any] = [
        {"p": {"label": "a", "hint": Undefined}},  # a field given as Undefined counts as left out
        {"p": {"label": "a", "unknown": Undefined}},
        {"p": {"label": Undefined}},
        {"p": Undefined},
        {"i": range(2)},  # iterable, not a list: each of its items
        {"i": {"a": 1}},
        {"i": b"bytes"},
    ]
    for variables in given:
        assert built(schema, document, variables) == graphql_cores(schema, document, variables), variables


def test_renamed_fields_internal_defaults_and_out_types_are_graphql_cores() -> None:
    schema, document = renamed_schema(), parse("query($r: Renamed) { field(renamed: $r) }")
    for value in [{"firstName": "Ada"}, {"firstName": "Ada", "legacy": None, "external": 1}, {"legacy": 1}]:
        variables = {"r": value}
        assert built(schema, document, variables) == graphql_cores(schema, document, variables), value


def test_many_bad_variables_give_graphql_cores_errors_up_to_its_limit() -> None:
    count = 60
    definitions = ", ".join(f"$v{n}: Int!" for n in range(count))
    uses = " ".join(f"f{n}: field(f: $v{n})" for n in range(count))
    schema, document = kinds_schema(), parse(f"query({definitions}) {{ {uses} }}")
    variables = {f"v{n}": "not an int" for n in range(count)}
    expected = graphql_cores(schema, document, variables)
    assert built(schema, document, variables) == expected and len(expected) == 51


def test_a_variables_default_is_a_fresh_value_for_each_request() -> None:
    schema, document = kinds_schema(), parse('query($i: [ID!] = ["a"]) { field(ids: $i) }')
    first, second = (Executor.build(schema, document) for _ in range(2))
    assert isinstance(first, Executor) and isinstance(second, Executor)
    assert first.variable_values.coerced == second.variable_values.coerced == {"i": ["a"]}
    assert first.variable_values.coerced["i"] is not second.variable_values.coerced["i"]


def test_an_operation_is_prepared_once_per_document_and_forgotten_with_it() -> None:
    schema = kinds_schema()
    document = parse("query($n: Node) { field(node: $n) }")
    operation = prepared(schema, document, None)
    assert operation is not None and prepared(schema, document, None) is operation
    assert prepared(schema, document, "Unknown") is None
    assert len(_PREPARED[id(document)]) == 1  # not every name a client sends
    key = id(document)
    del document, operation
    gc.collect()
    assert key not in _PREPARED


def test_a_bad_value_raises_nothing_graphql_core_does_not() -> None:
    schema, document = kinds_schema(), parse("query($p: Plain) { field(plain: $p) }")
    with pytest.raises(AttributeError):
        GraphQLCoreExecutor.build(schema, document, raw_variable_values=["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        Executor.build(schema, document, raw_variable_values=["not", "a", "dict"])  # type: ignore[arg-type]
