"""HookRunner enters extension hooks as strawberry's own runner does: same order, same errors, same result."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from app.schema.extensions import HookRunner, Schema

Log = list[str]


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "hi"

    @strawberry.field
    def broken(self) -> str:
        raise ValueError("broken field")


def recorder(log: Log, refuse_on: str | None = None) -> list[type[SchemaExtension]]:
    """Extensions of every kind of hook strawberry accepts, each writing what it saw into `log`."""

    class AsyncHooks(SchemaExtension):
        async def on_parse(self) -> AsyncIterator[None]:
            log.append("parse in")
            if refuse_on == "parse":
                raise GraphQLError("refused while parsing")
            yield
            log.append("parse out")

        async def on_execute(self) -> AsyncIterator[None]:
            log.append("execute in")
            try:
                yield
            except Exception as e:
                log.append(f"execute saw {type(e).__name__}")
                raise
            log.append("execute out")

    class SyncHooks(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            log.append("operation in")
            yield
            result = self.execution_context.result
            log.append(f"operation out, errors={len(getattr(result, 'errors', None) or [])}")

    class PlainHook(SchemaExtension):
        async def on_validate(self) -> None:  # type: ignore[override]
            log.append("validate (plain)")

    class SecondParse(SchemaExtension):
        def on_parse(self) -> Iterator[None]:
            log.append("second parse in")
            yield
            log.append("second parse out")

        def get_results(self) -> dict[str, Any]:
            return {"seen": len(log)}

    return [AsyncHooks, SyncHooks, PlainHook, SecondParse]


async def run(schema_class: type[strawberry.Schema], query: str, refuse_on: str | None = None) -> Any:
    log: Log = []
    schema = schema_class(query=Query, extensions=recorder(log, refuse_on))
    result = await schema.execute(query)
    errors = [e.message for e in result.errors or []]
    return log, result.data, errors, result.extensions


@pytest.mark.parametrize(
    ("query", "refuse_on"),
    [("{ hello }", None), ("{ broken }", None), ("{ hello }", "parse"), ("{ nope }", None), ("{", None)],
)
async def test_hooks_run_as_strawberrys_runner_runs_them(query: str, refuse_on: str | None) -> None:
    ours = await run(Schema, query, refuse_on)
    strawberrys = await run(strawberry.Schema, query, refuse_on)
    assert ours == strawberrys
    assert ours[0], "no hook ran"


def test_a_stage_is_planned_once_and_only_when_one_generator_hooks_it() -> None:
    log: Log = []
    extensions = [kind() for kind in recorder(log)]
    schema = Schema(query=Query)
    runner = schema.create_extensions_runner(None, extensions)  # type: ignore[arg-type]
    assert isinstance(runner, HookRunner)
    # parse: two extensions; validate: a plain function. Both run strawberry's way.
    assert set(runner.plan) == {"on_operation", "on_execute"}
    again = schema.create_extensions_runner(None, [kind() for kind in recorder(log)])  # type: ignore[arg-type]
    assert isinstance(again, HookRunner) and again.plan is not runner.plan  # other classes, another plan
    same = HookRunner(None, [type(e)() for e in extensions])  # type: ignore[arg-type]
    assert same.plan is runner.plan
