"""What our code relies on inside strawberry, graphql-core, broadcaster, redis-py, OpenTelemetry and uvicorn
beyond their documented API, checked without I/O. Each failure says which code of ours to revisit
(docs/architecture.md, "Upgrading dependencies")."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import broadcaster
import pytest
import strawberry
import uvicorn
from broadcaster import Broadcast, BroadcastBackend
from graphql import ExecutionResult, GraphQLSchema, parse
from graphql.execution import Executor as GraphQLCoreExecutor
from graphql.execution import get_variable_signature as graphql_signature
from graphql.execution import values as graphql_values
from graphql.utilities.coerce_input_value import coerce_default_value, coerce_input_value
from redis import asyncio as aioredis
from strawberry.extensions import MaskErrors
from strawberry.http.async_base_view import AsyncBaseHTTPView
from strawberry.schema import schema_converter
from strawberry.schema.schema import Schema as StrawberrySchema
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionContext as StrawberryExecutionContext
from strawberry.types import arguments as strawberry_arguments
from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol
from uvicorn.server import ServerState
from websockets.protocol import State
from websockets.server import ServerProtocol

from app.eventstore.position import Position
from app.identity import ANONYMOUS
from app.live.backend import RedisPubSubBackend
from app.live.notices import ChangeNotice
from app.metrics import names as labels
from app.metrics.requests import SCOPE_KEY
from app.schema import build_schema
from app.schema.admission import Admission
from app.schema.errors import EXCEPTION_HANDLERS
from app.schema.execution import Executor
from app.schema.extensions import OperationLabel, PerEventExecutor, PublicErrors, Schema
from app.schema.stream_transports import SSE, Multipart
from app.schema.view import BookwormGraphQL
from app.schema.websockets import LegacyWSHandler, TransportWSHandler
from app.schema.wire import PROTOCOL, SUPPORTED, forget_handshake

CATALOG_CHANGED = "subscription { catalogChanged { kind position entity entityId } }"
OUR_OWN_METHODS = {"authenticate", "opening", "fatal"}  # public methods of ours that override nothing


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def _overrides(cls: type) -> list[str]:
    return [
        name
        for name, member in vars(cls).items()
        if inspect.isfunction(member) and not name.startswith("_") and name not in OUR_OWN_METHODS
    ]


@pytest.mark.parametrize(
    "cls",
    [
        TransportWSHandler,
        LegacyWSHandler,
        BookwormGraphQL,
        PublicErrors,
        Schema,
        Admission,
        OperationLabel,
        PerEventExecutor,
        Executor,
        SSE,
        Multipart,
    ],
)
def test_every_public_method_we_define_still_overrides_the_library_one(cls: type) -> None:
    base = cls.__mro__[1]
    for name in _overrides(cls):
        inherited = getattr(base, name, None)
        assert inherited is not None, (
            f"{base.__module__}.{base.__qualname__} has no {name} any more: {cls.__qualname__}.{name} "
            "is no longer called; find what replaced it and move our override there"
        )
        assert _parameters(getattr(cls, name)) == _parameters(inherited), (
            f"{base.__qualname__}.{name} now takes {_parameters(inherited)}: "
            f"adapt {cls.__module__}.{cls.__qualname__}.{name}"
        )


def test_the_view_still_streams_a_result_through_the_private_method_we_override() -> None:
    # BookwormGraphQL._create_streaming_response answers an HTTPStream: strawberry's run() calls it for a
    # result that streams (one with __aiter__ and __anext__), with these arguments.
    ours = BookwormGraphQL._create_streaming_response
    theirs = AsyncBaseHTTPView._create_streaming_response
    assert _parameters(ours) == _parameters(theirs)
    assert "self._create_streaming_response(" in inspect.getsource(AsyncBaseHTTPView.run)


def test_the_websocket_handlers_state_we_read_is_still_there() -> None:
    transport = BaseGraphQLTransportWSHandler[Any, None](
        view=None,  # type: ignore[arg-type]
        websocket=None,  # type: ignore[arg-type]
        context=None,
        root_value=None,
        schema=None,  # type: ignore[arg-type]
        connection_init_wait_timeout=timedelta(seconds=1),
        max_subscriptions_per_connection=None,
    )
    legacy = BaseGraphQLWSHandler[Any, None](
        view=None,  # type: ignore[arg-type]
        websocket=None,  # type: ignore[arg-type]
        context=None,
        root_value=None,
        schema=None,  # type: ignore[arg-type]
        keep_alive=False,
        keep_alive_interval=None,
        max_subscriptions_per_connection=None,
    )
    used = [
        (transport, ["operations", "connection_acknowledged", "connection_timed_out", "send_message"]),
        (legacy, ["tasks", "subscriptions", "connection_acknowledged", "send_message", "send_data_message"]),
    ]
    for handler, names in used:
        for name in names:
            assert hasattr(handler, name), (
                f"strawberry's {type(handler).__qualname__} has no {name} any more: "
                "app/schema/websockets.py reads it to count, refuse and clean up operations"
            )


def test_strawberry_still_keeps_the_graphql_core_schema_in_schema_underscore_schema() -> None:
    assert isinstance(getattr(build_schema(), "_schema", None), GraphQLSchema), (
        "strawberry's Schema._schema is no longer the GraphQLSchema: app/schema/admission.py analyses and "
        "validates documents against it"
    )


# What app/schema/arguments.py and app/schema/resolvers.py do again, once per field, that strawberry does
# per request: each function's source as it was when they were written (strawberry 0.341.2).
STRAWBERRY_RESOLVER_PATH = {
    strawberry_arguments.convert_argument: "a11a22f213be34f4",
    strawberry_arguments.convert_arguments: "c1f343b7611e0f78",
    schema_converter.get_arguments: "622f5399b812e9e2",
    schema_converter.GraphQLCoreConverter.from_resolver: "bcac1354fecdee79",
    schema_converter.GraphQLCoreConverter._get_field_exception_handlers: "bf6674b25bb0345a",
}


@pytest.mark.parametrize("function", STRAWBERRY_RESOLVER_PATH, ids=lambda f: f.__qualname__)
def test_strawberrys_argument_conversion_and_resolver_are_what_the_built_resolvers_repeat(
    function: Callable[..., Any],
) -> None:
    digest = hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]
    assert digest == STRAWBERRY_RESOLVER_PATH[function], (
        f"strawberry's {function.__qualname__} changed: app/schema/arguments.py (Planner, Plan) and "
        "app/schema/resolvers.py (the built resolvers) do what it does once per field; bring them to its "
        "new behaviour, run tests/unit/test_arguments.py, then record the new digest here"
    )


# What app/schema/variables.py and Executor.build (app/schema/execution.py) do again, once per document and
# per type, that graphql-core's build does per request: each function's source as it was when they were
# written (graphql-core 3.3.2).
GRAPHQL_CORE_VARIABLE_PATH = {
    GraphQLCoreExecutor.build: "faf76cb9d6140315",
    GraphQLCoreExecutor.__init__: "9b630bd4461cc4ea",
    graphql_values.get_variable_values: "4c1b2880140b2346",
    graphql_values.coerce_variable_values: "9d7e32a42ceaec29",
    graphql_values.input_is_nested_too_deeply: "9bdec490d9eaaa44",
    coerce_input_value: "b48fbfc965a86e87",
    coerce_default_value: "b7496350793916e2",
    graphql_signature.get_variable_signature: "12756e033317ad4a",
}


@pytest.mark.parametrize("function", GRAPHQL_CORE_VARIABLE_PATH, ids=lambda f: f.__qualname__)
def test_graphql_cores_build_and_variable_coercion_are_what_the_prepared_operations_repeat(
    function: Callable[..., Any],
) -> None:
    digest = hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]
    assert digest == GRAPHQL_CORE_VARIABLE_PATH[function], (
        f"graphql-core's {function.__qualname__} changed: app/schema/variables.py (Prepared, the planned "
        "coercions) and Executor.build in app/schema/execution.py do what it does once per document; bring "
        "them to its new behaviour, run tests/unit/test_variables.py, then record the new digest here"
    )


# What KnownOperations (app/schema/known.py) does again in one function for an operation known from earlier
# requests: strawberry's execute with the schema's extensions, as it was when it was written (strawberry
# 0.341.2).
STRAWBERRY_EXECUTE_PATH = {
    StrawberrySchema.execute: "a4b76c96d614f4d0",
    StrawberrySchema._prepare_operation_async: "0973d3b5a73f65fd",
    StrawberrySchema._execute_operation: "5d64cc27e74797f9",
    StrawberrySchema._handle_execution_result: "56893f850faa9f40",
    StrawberrySchema._get_custom_context_kwargs: "61e0bad48ddbf9f0",
    StrawberryExecutionContext.operation_name.fget: "551c5fdf4b5834b9",
    MaskErrors.on_operation: "87c3870f22afeba7",
}


@pytest.mark.parametrize("function", STRAWBERRY_EXECUTE_PATH, ids=lambda f: f.__qualname__)
def test_strawberrys_execute_is_what_known_operations_repeat(function: Callable[..., Any]) -> None:
    digest = hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]
    assert digest == STRAWBERRY_EXECUTE_PATH[function], (
        f"strawberry's {function.__qualname__} changed: KnownOperations (app/schema/known.py) runs an "
        "operation's steps as its execute does; bring it to the new behaviour, run "
        "tests/integration/test_lean_view.py, then record the new digest here"
    )


def test_the_strawberry_helpers_the_built_resolvers_call_are_still_there() -> None:
    revisit = "app/schema/arguments.py and app/schema/resolvers.py call it"
    for helper in ("_is_leaf_type", "_is_optional_leaf_type", "convert_argument"):
        assert callable(getattr(strawberry_arguments, helper, None)), f"{helper}: {revisit}"
    schema = build_schema()
    create_book = schema._schema.mutation_type.fields["createBook"]  # type: ignore[union-attr]
    field = create_book.extensions[schema_converter.GraphQLCoreConverter.DEFINITION_BACKREF]
    handlers = schema.schema_converter._get_field_exception_handlers(field)
    assert [type(handler) for _, handler in handlers] == [type(h) for h in EXCEPTION_HANDLERS], revisit
    resolver = field.base_resolver
    for name in ("self_parameter", "parent_parameter", "root_parameter", "info_parameter", "wrapped_func"):
        assert hasattr(resolver, name), f"StrawberryResolver.{name}: {revisit}"
    assert resolver.self_parameter is not None and resolver.info_parameter is not None, revisit


def test_each_subscription_event_memoises_subfields_in_its_own_executor() -> None:
    context = SimpleNamespace(principal=ANONYMOUS)
    executor = PerEventExecutor.build(build_schema()._schema, parse(CATALOG_CHANGED), context_value=context)
    assert isinstance(executor, PerEventExecutor), executor
    memo = getattr(executor, "_relevant_sub_fields", None)
    assert memo == {}, (
        "graphql-core's Executor keeps no _relevant_sub_fields memo any more: PerEventExecutor "
        "(app/schema/extensions.py) resets a memo that is gone; find where collect_subfields memoises "
        "now and whether per-event executors still share it (tests/unit/test_subscription_memory.py)"
    )
    notice = ChangeNotice(
        position=Position(1, 1), topic="catalog", kind="CREATED", entity="Book", entity_id="b1"
    )

    event = executor.build_per_event_executor(notice)
    result = event.execute_operation(False)

    assert isinstance(result, ExecutionResult) and not result.errors, result
    assert event._relevant_sub_fields and memo == {}, (
        "a subscription event's subfields were memoised in the subscription's executor, or nowhere: "
        "PerEventExecutor (app/schema/extensions.py) no longer gives each event a memo of its own"
    )


def test_our_backend_implements_broadcasters_whole_backend_interface() -> None:
    interface = [name for name, member in vars(BroadcastBackend).items() if not name.startswith("_")]
    for name in interface:
        ours = vars(RedisPubSubBackend).get(name)
        assert ours is not None, (
            f"broadcaster's BroadcastBackend now has {name}: implement it in app/live/backend.py"
        )
        assert len(_parameters(ours)) == len(_parameters(getattr(BroadcastBackend, name))), (
            f"BroadcastBackend.{name} now takes {_parameters(getattr(BroadcastBackend, name))}: "
            "adapt app/live/backend.py"
        )


def test_broadcast_calls_nothing_on_its_backend_but_that_interface() -> None:
    called = set(re.findall(r"self\._backend\.(\w+)", inspect.getsource(broadcaster._base)))
    assert called <= set(vars(RedisPubSubBackend)), (
        f"broadcaster's Broadcast now calls {sorted(called)} on its backend: check app/live/backend.py"
    )


def _finishes_at_once(awaitable: Awaitable[Any]) -> Any:
    """Run one step of an awaitable and return its result; fail if it suspends."""
    steps = awaitable.__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        return done.value
    steps.close()
    raise AssertionError(
        "entering or leaving broadcaster's Broadcast.subscribe suspends (it awaits something new, or "
        "RedisPubSubBackend.subscribe or unsubscribe does): a cancellation there leaks the channel (see "
        "app/live/backend.py's docstring; tests/integration/test_live_cancellation.py)"
    )


async def test_entering_and_leaving_a_broadcast_subscription_never_suspends() -> None:
    backend = RedisPubSubBackend("redis://127.0.0.1:1/0")  # never connected
    subscription = Broadcast(backend=backend).subscribe("books")
    try:
        _finishes_at_once(subscription.__aenter__())
        assert "books" in backend._channels, "Broadcast.subscribe no longer subscribes through the backend"
        _finishes_at_once(subscription.__aexit__(None, None, None))
        assert "books" not in backend._channels, "leaving Broadcast.subscribe no longer unsubscribes"
    finally:
        await backend.disconnect()


def test_the_redis_connection_calls_our_backend_makes_still_take_their_arguments() -> None:
    expected: list[tuple[Callable[..., Any], set[str]]] = [
        (aioredis.ConnectionPool.make_connection, {"self"}),
        (aioredis.Connection.read_response, {"self", "timeout"}),
        (aioredis.Connection.disconnect, {"self", "nowait"}),
    ]
    for method, names in expected:
        required = {
            name
            for name, parameter in inspect.signature(method).parameters.items()
            if parameter.default is inspect.Parameter.empty and parameter.kind is not parameter.VAR_KEYWORD
        }
        assert names <= set(_parameters(method)) and required <= {"self"}, (
            f"redis-py's {method.__qualname__} now takes {_parameters(method)}: adapt app/live/backend.py"
        )
    assert "check_health" in inspect.getsource(aioredis.Connection.send_command), (
        "redis-py's Connection.send_command no longer reads check_health: app/live/backend.py sends "
        "SUBSCRIBE and PING with check_health=False so that a health check never reads its replies"
    )


def test_redis_py_parses_replies_with_hiredis_when_it_is_installed() -> None:
    pytest.importorskip("hiredis")
    parser = RedisPubSubBackend("redis://127.0.0.1:1/0")._connections.make_connection()._parser
    assert type(parser).__name__ == "_AsyncHiredisParser", (
        f"redis-py parses with {type(parser).__qualname__} although hiredis is installed: it no longer "
        "accepts this hiredis (see redis.utils.HIREDIS_AVAILABLE) and every reply goes through the "
        "pure-Python parser again (bench/README.md: 40 % of the worker's CPU)"
    )


async def test_a_read_that_times_out_answers_none_and_keeps_what_it_read() -> None:
    connection = RedisPubSubBackend("redis://127.0.0.1:1/0")._connections.make_connection()
    connection._reader = asyncio.StreamReader()  # what connect() would set, fed here by hand
    connection._parser.on_connect(connection)
    message = b"*3\r\n$7\r\nmessage\r\n$5\r\nbooks\r\n$4\r\nsent\r\n"
    connection._reader.feed_data(message[:25])

    assert await connection.read_response(timeout=0) is None, (
        "redis-py's read_response(timeout=...) no longer answers None when the timeout passes: "
        "app/live/backend.py's health PING relies on it"
    )
    connection._reader.feed_data(message[25:])
    assert await connection.read_response(timeout=1) == [b"message", b"books", b"sent"], (
        f"redis-py's {type(connection._parser).__qualname__} dropped what it had read when the timeout "
        "passed: app/live/backend.py would lose or misread a pub/sub message after each quiet interval"
    )


def test_mask_errors_still_masks_through_the_private_hook_we_override() -> None:
    # PublicErrors overrides MaskErrors._process_result (a private method) to skip a runtime Protocol check.
    assert "_process_result" in vars(PublicErrors)
    assert _parameters(PublicErrors._process_result) == _parameters(MaskErrors._process_result)
    assert "self._process_result(" in inspect.getsource(MaskErrors.on_operation)


@strawberry.type
class _Query:
    @strawberry.field
    def fine(self) -> int:
        return 1

    @strawberry.field
    def broken(self) -> int:
        raise ValueError("resolver failed")


async def test_get_results_sees_each_operation_once_with_its_result_and_errors() -> None:
    names = labels.OperationNames()
    schema = strawberry.Schema(query=_Query, extensions=[lambda: OperationLabel(names)])

    async def label(query: str) -> tuple[str, bool]:
        request = SimpleNamespace(scope={"type": "http"}, state=SimpleNamespace())
        await schema.execute(query, context_value=SimpleNamespace(request=request))
        noted: tuple[str, bool] = request.scope[SCOPE_KEY]
        return noted

    # `result` is set when get_results runs only for an operation that was executed, and
    # `pre_execution_errors` holds whatever errors its answer carries (app/schema/extensions.py).
    assert await label("query Fine { fine }") == ("Fine", False)
    assert await label("query Broken { broken }") == ("Broken", True)
    assert await label("query Invalid { nothing }") == (labels.OTHER, True)
    assert await label("{ fine }") == (labels.ANONYMOUS, False)


def test_the_sdk_still_reads_otel_traces_sampler_through_the_function_we_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    assert "TraceIdRatioBased{0.25}" in _get_from_env_or_default().get_description()


async def test_uvicorns_websocket_protocol_still_has_the_state_the_wire_reads() -> None:
    # app/schema/wire.py writes frames to the transport of `bookworm serve`'s websocket protocol (uvicorn's
    # "auto" choice) and reads its state to refuse a write that would not be safe; ExposeProtocol finds
    # the protocol as the owner of the `send` uvicorn calls the app with.
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    config = uvicorn.Config(app, lifespan="off", log_config=None)
    config.load()
    protocol = AutoWebSocketsProtocol(config=config, server_state=ServerState(), app_state={})  # type: ignore[misc]
    name = f"{type(protocol).__module__}.{type(protocol).__qualname__}"
    revisit = "app/schema/wire.py writes to this protocol's transport: check what it reads"
    assert name in SUPPORTED, f"uvicorn's ws='auto' is now {name}: {revisit}"
    assert isinstance(protocol.writable, asyncio.Event), revisit
    protocol.pause_writing()
    assert not protocol.writable.is_set(), revisit
    protocol.resume_writing()
    assert protocol.writable.is_set(), revisit
    assert protocol.close_sent is False and protocol.disconnected is False, revisit
    assert isinstance(protocol.conn, ServerProtocol) and protocol.conn.state is State.CONNECTING, revisit
    assert hasattr(protocol, "transport"), revisit
    assert "self.app(self.scope, self.receive, self.send)" in inspect.getsource(type(protocol)), revisit
    # forget_handshake drops the handshake's request and response once the socket is accepted: uvicorn
    # reads them only in handle_connect and as it sends the accept.
    source = inspect.getsource(type(protocol))
    accepting = inspect.getsource(type(protocol).send).split('elif message["type"] == "websocket.close"')[0]
    handshake = inspect.getsource(type(protocol).handle_connect) + accepting
    for name in ("self.request", "self.response"):
        assert source.count(name) == handshake.count(name), f"uvicorn reads {name} later: {revisit}"
    assert "self.handshake_complete = True" in accepting, revisit
    assert uvicorn.__version__.startswith("0.55."), f"pyproject.toml pins uvicorn 0.55: {revisit}"


def test_strawberrys_operation_still_says_when_it_completed() -> None:
    # SocketWire (app/schema/wire.py) refuses to write once the client completed the operation.
    source = inspect.getsource(Operation)
    assert "self.completed = False" in source and "self.completed = True" in source


def test_the_websockets_parser_parses_frames_once_the_kept_handshake_headers_are_cleared() -> None:
    # forget_handshake (app/schema/wire.py) empties the handshake's headers in place: the websockets
    # library's parser keeps the request as a local of its generator for the connection's life, and never
    # reads it again once the handshake is done.
    revisit = "app/schema/wire.py empties the handshake request's headers: check the parser still keeps it"
    server = ServerProtocol()
    server.receive_data(
        b"GET /graphql HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    [request] = server.events_received()
    server.send_response(server.accept(request))
    assert server.state is State.OPEN, revisit
    assert server.parser.gi_frame.f_locals.get("request") is request, revisit
    scope = {PROTOCOL: SimpleNamespace(handshake_complete=True, request=request, response=None)}
    forget_handshake(scope)
    assert len(request.headers) == 0 and scope[PROTOCOL].request is None
    # A masked text frame "hi" from the client still parses.
    server.receive_data(b"\x81\x82\x00\x00\x00\x00hi")
    [frame] = server.events_received()
    assert frame.data == b"hi", revisit
