"""Resolvers built once per field: planned argument conversion, then the resolver, with strawberry's handlers.

strawberry wraps each resolver in layers it builds and walks per request: `get_arguments` (the generic
`convert_arguments`), the field-extension chain (a closure, `reduce` and `partial` even when it is empty),
a lambda for the exception handling, and three coroutines for an async field. A field with a resolver of
its own and no field extension gets instead one function doing the same, in the same order: build the
`Info`, convert the arguments by the field's `Plan` (app/schema/arguments.py), pass the source and info
as the resolver asks, call it, and hand an exception to the schema's exception handlers whose error type
is in the field's result (strawberry's own matching, computed once), a declined one (None) raising
again. Subscriptions, basic fields and fields with extensions keep strawberry's resolver.

`install` replaces `resolve` on the graphql-core schema's fields when the schema is built; graphql-core
calls it like strawberry's. tests/unit/test_arguments.py runs the same operations through a schema with
and without them and compares results and errors.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import strawberry
from graphql import GraphQLField, GraphQLObjectType, GraphQLResolveInfo
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField
from strawberry.types.fields.resolver import StrawberryResolver

from app.schema.arguments import Planner

Handlers = tuple[tuple[tuple[type[Exception], ...], Any], ...]


def install(schema: strawberry.Schema) -> int:
    """Give every field of `schema` that `compiled` covers its built resolver; return how many."""
    converter = schema.schema_converter
    planner = Planner(converter.scalar_registry, schema.config)
    count = 0
    for named in schema._schema.type_map.values():
        if not isinstance(named, GraphQLObjectType) or named.name.startswith("__"):
            continue
        for graphql_field in named.fields.values():
            resolver = compiled(graphql_field, converter, planner, schema.config.info_class)
            if resolver is not None:
                graphql_field.resolve = resolver
                count += 1
    return count


def covered(field: StrawberryField) -> bool:
    """Whether `compiled` builds `field`'s resolver: its own resolver, called as strawberry calls it."""
    resolver = field.base_resolver
    return (
        resolver is not None
        and not field.is_subscription
        and not field.extensions
        and type(field).get_result is StrawberryField.get_result
        and type(resolver).__call__ is StrawberryResolver.__call__
        and callable(resolver.wrapped_func)
        and not inspect.isasyncgenfunction(resolver.wrapped_func)
    )


def compiled(
    graphql_field: GraphQLField,
    converter: GraphQLCoreConverter,
    planner: Planner,
    info_class: type[strawberry.Info[Any, Any]],
) -> Callable[..., Any] | None:
    """The resolver of `graphql_field` built once, or None where strawberry's stays."""
    field = graphql_field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(field, StrawberryField) or not covered(field):
        return None
    resolver = field.base_resolver
    assert resolver is not None
    plan = planner.plan(field.arguments)
    handlers: Handlers = converter._get_field_exception_handlers(field)
    call: Callable[..., Any] = resolver.wrapped_func  # type: ignore[assignment]  # callable: covered()
    pass_self = resolver.self_parameter is not None
    sources = tuple(p.name for p in (resolver.parent_parameter, resolver.root_parameter) if p is not None)
    info_name = resolver.info_parameter.name if resolver.info_parameter is not None else None

    def prepare(source: Any, info: Any, values: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        kwargs = plan.convert(values, info) if plan.steps else {}
        for name in sources:
            kwargs[name] = source
        if info_name is not None:
            kwargs[info_name] = info
        return ((source,) if pass_self else ()), kwargs

    if field.is_async:
        return _async_resolver(field, info_class, prepare, call, handlers)
    return _sync_resolver(field, info_class, prepare, call, handlers)


Prepare = Callable[[Any, Any, dict[str, Any]], tuple[tuple[Any, ...], dict[str, Any]]]


def _async_resolver(
    field: StrawberryField, info_class: Any, prepare: Prepare, call: Callable[..., Any], handlers: Handlers
) -> Callable[..., Any]:
    async def resolve(source: Any, info: GraphQLResolveInfo[Any], **values: Any) -> Any:
        strawberry_info = info_class(_raw_info=info, _field=field)
        try:
            args, kwargs = prepare(source, strawberry_info, values)
            result = call(*args, **kwargs)
            return (await result) if inspect.isawaitable(result) else result
        except Exception as exc:
            return await _handled(exc, field, strawberry_info, handlers)

    return resolve


def _sync_resolver(
    field: StrawberryField, info_class: Any, prepare: Prepare, call: Callable[..., Any], handlers: Handlers
) -> Callable[..., Any]:
    def resolve(source: Any, info: GraphQLResolveInfo[Any], **values: Any) -> Any:
        strawberry_info = info_class(_raw_info=info, _field=field)
        try:
            args, kwargs = prepare(source, strawberry_info, values)
            result = call(*args, **kwargs)
        except Exception as exc:
            handler = _handler(handlers, exc)
            if handler is None:
                raise
            handled = handler.handle(exc, field=field, info=strawberry_info)
            if handled is None:
                raise
            return handled
        if handlers and inspect.isawaitable(result):
            return _awaited(result, field, strawberry_info, handlers)
        return result

    return resolve


async def _awaited(result: Any, field: StrawberryField, info: Any, handlers: Handlers) -> Any:
    """A sync resolver's awaitable, its exception handed to the handlers as strawberry does."""
    try:
        return await result
    except Exception as exc:
        return await _handled(exc, field, info, handlers)


async def _handled(exc: Exception, field: StrawberryField, info: Any, handlers: Handlers) -> Any:
    """What the handler strawberry matched to `exc` makes of it (awaited); `exc` again when none does."""
    handler = _handler(handlers, exc)
    if handler is None:
        raise exc
    handled = handler.handle(exc, field=field, info=info)
    if inspect.isawaitable(handled):
        handled = await handled
    if handled is None:  # the handler declined it
        raise exc
    return handled


def _handler(handlers: Handlers, exc: Exception) -> Any:
    for exception_types, handler in handlers:
        if isinstance(exc, exception_types):
            return handler
    return None
