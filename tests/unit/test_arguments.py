"""Planned argument conversion and built resolvers answer as strawberry's own: the same values, results,
errors and paths, on every argument of the application's schema and on a schema of every kind of field."""

from __future__ import annotations

import asyncio
import decimal
import enum
from typing import Any

import pytest
import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    coerce_input_value,
)
from strawberry.relay import GlobalID
from strawberry.schema.config import StrawberryConfig
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

from app.schema import build_schema
from app.schema.arguments import Planner
from app.schema.extensions import Schema
from app.schema.resolvers import covered, install
from app.schema.scalars import SCALARS

SAMPLES: dict[str, Any] = {
    "String": "text",
    "ID": "0190c0de-0000-7000-8000-00000000000a",
    "Int": 3,
    "Float": 2.5,
    "Boolean": True,
    "Decimal": "12.50",
    "DateTime": "2026-12-07T10:00:00Z",
}


def sample(type_: GraphQLInputType, *, fill: str) -> Any:
    """A JSON value of `type_`: every input field given (`all`), only the required ones (`required`), or
    every nullable one null (`nulls`)."""
    if isinstance(type_, GraphQLNonNull):
        return sample(type_.of_type, fill=fill)
    if isinstance(type_, GraphQLList):
        return [sample(type_.of_type, fill=fill), sample(type_.of_type, fill=fill)]
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, GraphQLScalarType):
        return SAMPLES[type_.name]
    assert isinstance(type_, GraphQLInputObjectType)
    value: dict[str, Any] = {}
    for name, field in type_.fields.items():
        required = isinstance(field.type, GraphQLNonNull)
        if fill == "all" or required:
            value[name] = sample(field.type, fill=fill)
        elif fill == "nulls":
            value[name] = None
    return value


def arguments_of(schema: strawberry.Schema) -> list[tuple[str, StrawberryField, Any]]:
    found = []
    for named in schema._schema.type_map.values():
        if not isinstance(named, GraphQLObjectType) or named.name.startswith("__"):
            continue
        for name, graphql_field in named.fields.items():
            field = graphql_field.extensions.get("strawberry-definition")
            if isinstance(field, StrawberryField) and graphql_field.args:
                found.append((f"{named.name}.{name}", field, graphql_field))
    return found


APP = build_schema()


@pytest.mark.parametrize("fill", ["all", "required", "nulls"])
def test_every_argument_of_the_schema_converts_as_strawberry_converts_it(fill: str) -> None:
    planner = Planner(APP.schema_converter.scalar_registry, APP.config)
    checked = 0
    for where, field, graphql_field in arguments_of(APP):
        values = {
            name: coerce_input_value(sample(argument.type, fill=fill), argument.type)
            for name, argument in graphql_field.args.items()
            if fill != "required" or isinstance(argument.type, GraphQLNonNull)
        }
        registry = APP.schema_converter.scalar_registry
        expected = convert_arguments(values, field.arguments, registry, APP.config)
        converted = planner.plan(field.arguments).convert(values, None)
        assert converted == expected, where
        assert [type(v) for v in converted.values()] == [type(v) for v in expected.values()], where
        checked += 1
    assert checked > 30  # every query and mutation field with arguments


def test_the_planned_input_is_a_fresh_value_each_time() -> None:
    field = APP._schema.mutation_type.fields["createBook"]  # type: ignore[union-attr]
    plan = Planner(APP.schema_converter.scalar_registry, APP.config).plan(
        field.extensions["strawberry-definition"].arguments
    )
    ids = ["0190c0de-0000-7000-8000-00000000000a"]
    values = {"input": {"name": "A", "price": decimal.Decimal(1), "authorIds": ids, "categoryId": "c"}}
    first, second = plan.convert(values, None)["input"], plan.convert(values, None)["input"]
    assert first == second and first is not second
    assert first.author_ids == ids and first.author_ids is not ids  # copied, as strawberry copies a list
    assert first.description is None and first.publisher_id is None  # left out: None, as strawberry sets


def test_every_mutation_and_argument_taking_query_field_runs_through_a_built_resolver() -> None:
    for where, field, graphql_field in arguments_of(APP):
        if field.is_subscription:
            continue
        assert covered(field), where
        assert graphql_field.resolve.__qualname__.startswith("_async_resolver"), where


# A schema of every kind of argument and resolver, run through strawberry's resolvers and the built ones.


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.input
class Inner:
    label: str
    hint: str | None  # nullable, no default: strawberry starts it at None
    colours: list[Colour] = strawberry.field(default_factory=list)
    next: Inner | None = None


@strawberry.input
class Outer:
    amount: decimal.Decimal
    inner: Inner
    inners: list[Inner] | None = None
    note: str | None = strawberry.UNSET
    count: int = 7
    tags: list[str] | None = None


class Refused(Exception):
    pass


class Declined(Exception):
    pass


@strawberry.type
class Done:
    text: str


@strawberry.type
class Failed:
    reason: str


class FailedHandler(strawberry.ExceptionHandler[Refused, Failed]):
    def handle(self, exception: Refused, *, field: Any, info: Any) -> Failed:
        return Failed(reason=f"{exception} at {field.python_name}")


class DecliningHandler(strawberry.ExceptionHandler[Declined, Failed]):
    def handle(self, exception: Declined, *, field: Any, info: Any) -> Failed | None:
        return None


async def _later(text: str) -> str:
    await asyncio.sleep(0)
    return text


def describe(outer: Outer | None) -> str:
    return repr(outer)


@strawberry.type
class Query:
    @strawberry.field
    def plain(self, outer: Outer, colour: Colour = Colour.BLUE, many: list[Outer] | None = None) -> str:
        return f"{describe(outer)} {colour} {many!r}"

    @strawberry.field
    async def awaited(self, info: strawberry.Info, first: int = 10, after: str | None = None) -> str:
        return await _later(f"{info.field_name} {first} {after!r}")

    @strawberry.field
    def with_root(self, root: Any, number: int) -> str:
        return f"{root!r} {number}"

    @strawberry.field
    def maybe(self, value: strawberry.Maybe[str | None], strict: strawberry.Maybe[int] = None) -> str:
        return f"{value!r} {strict!r}"

    @strawberry.field
    def node(self, id: GlobalID) -> str:
        return f"{id.type_name} {id.node_id}"

    @strawberry.field
    async def outcome(self, fail: str | None = None) -> Done | Failed:
        if fail == "refused":
            raise Refused("no")
        if fail == "declined":
            raise Declined("declined")
        if fail == "other":
            raise ValueError("other")
        return Done(text="ok")

    @strawberry.field
    def sync_outcome(self, fail: bool = False) -> Done | Failed:
        if fail:
            raise Refused("sync")
        return Done(text="sync ok")

    @strawberry.field
    def awaitable_outcome(self, fail: bool = False) -> Done | Failed:
        # A sync resolver whose value is awaitable (a DataLoader's load, say): strawberry awaits it.
        async def later() -> Done | Failed:
            if fail:
                raise Refused("later")
            return Done(text="later ok")

        awaitable: Any = later()
        return awaitable  # type: ignore[no-any-return]

    @strawberry.field
    def broken(self, number: int) -> str:
        raise ValueError(f"broken {number}")


def _schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    options: dict[str, Any] = {
        "query": Query,
        "config": StrawberryConfig(scalar_map=SCALARS),
        "exception_handlers": [FailedHandler(), DecliningHandler()],
    }
    return strawberry.Schema(**options), Schema(**options)


OUTCOME = "{ __typename ... on Done { text } ... on Failed { reason } }"
DOCUMENTS: list[tuple[str, dict[str, Any] | None]] = [
    ('{ plain(outer: {amount: "1.50", inner: {label: "a"}}) }', None),
    (
        'query($o: Outer!) { plain(outer: $o, colour: RED, many: [$o, {amount: 2, inner: {label: "b"}}]) }',
        {
            "o": {
                "amount": "3",
                "inner": {
                    "label": "x",
                    "colours": ["RED"],
                    "next": {"label": "y", "hint": "h", "next": None},
                },
                "inners": [{"label": "z"}],
                "note": None,
                "tags": ["t"],
            }
        },
    ),
    ("query($o: Outer!) { plain(outer: $o) }", {"o": {"amount": "1.505", "inner": {"label": "a"}}}),
    ("query($o: Outer!) { plain(outer: $o) }", {"o": {"amount": "1", "inner": None}}),
    ("query($o: Outer!) { plain(outer: $o) }", {"o": {"amount": "1", "inner": {"label": 5}}}),
    ("query($o: Outer!) { plain(outer: $o) }", {"o": {"amount": 1.5, "inner": {"label": "a"}}}),
    ('{ plain(outer: {amount: "1", inner: {label: "a", colours: [GREEN]}}) }', None),
    ("{ awaited }", None),
    ('{ awaited(first: 2, after: "x") }', None),
    ("query($n: Int!) { withRoot(number: $n) }", {"n": 4}),
    ('{ node(id: "VHlwZToxMjM=") }', None),
    ("{ maybe(value: null) }", None),
    ('{ maybe(value: "v", strict: 2) }', None),
    ("{ maybe(value: null, strict: null) }", None),
    ('{ node(id: "not base64") }', None),
    (f"{{ outcome {OUTCOME} }}", None),
    (f'{{ outcome(fail: "refused") {OUTCOME} }}', None),
    (f'{{ outcome(fail: "declined") {OUTCOME} }}', None),
    (f'{{ outcome(fail: "other") {OUTCOME} }}', None),
    (f"{{ syncOutcome {OUTCOME} failed: syncOutcome(fail: true) {OUTCOME} }}", None),
    (f"{{ awaitableOutcome {OUTCOME} failed: awaitableOutcome(fail: true) {OUTCOME} }}", None),
    ("{ broken(number: 3) a: awaited }", None),
]


@pytest.mark.parametrize(("document", "variables"), DOCUMENTS)
def test_built_resolvers_answer_as_strawberrys(document: str, variables: dict[str, Any] | None) -> None:
    theirs, ours = _schemas()

    async def run(schema: strawberry.Schema) -> Any:
        return await schema.execute(document, variable_values=variables, root_value="the root")

    expected, answered = asyncio.run(run(theirs)), asyncio.run(run(ours))
    assert answered.data == expected.data
    assert [(e.message, e.path) for e in answered.errors or []] == [
        (e.message, e.path) for e in expected.errors or []
    ]


def test_the_test_schema_runs_through_built_resolvers_where_covered() -> None:
    theirs, ours = _schemas()
    fields = ours._schema.query_type.fields  # type: ignore[union-attr]
    assert all(covered(f.extensions["strawberry-definition"]) for f in fields.values())
    assert all(f.resolve.__module__ == "app.schema.resolvers" for f in fields.values())
    assert install(theirs) == len(fields)  # any strawberry schema: every field of Query here
