"""The /graphql endpoint: strawberry's ASGI view plus GraphQL-over-HTTP status codes and our headers."""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from cross_web import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.types import HTTPMethod
from strawberry.schema import BaseSchema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult, SubscriptionExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from app.admission.clients import client_key
from app.admission.fairness import FairShare, TooManyWaiting
from app.domain.errors import DomainError
from app.identity import ANONYMOUS, Principal
from app.identity.keys import resolve_keys
from app.identity.tokens import InvalidToken
from app.identity.verified import VerifiedTokens
from app.metrics import requests as metrics
from app.middleware import LEAVE_IN_FLIGHT
from app.projections import PROJECTIONS
from app.queries import reads
from app.queries.consistency import TooManyWaiters
from app.schema.admission import RATE_LIMITED, rate_limited
from app.schema.cache import READING_KEY, reading_of
from app.schema.context import Context, ip_of, sign_in
from app.schema.http_streams import HTTPStream, HTTPStreams, close_stream, streaming
from app.schema.ide import graphiql_page
from app.schema.lean import lean_request
from app.schema.loaders import Loaders
from app.schema.output import cap_response, encode
from app.schema.positions import BadCursor, Position, parse_cursor
from app.schema.responses import (
    GRAPHQL_RESPONSE,
    JSON,
    EncodedData,
    Refused,
    accepts_json,
    cached_response,
    error_response,
    is_request_error,
    negotiate,
    refusal_status,
    unauthenticated_error,
    unauthenticated_response,
)
from app.schema.stream_transports import Transport
from app.schema.websocket_limits import operation_type
from app.schema.websockets import LegacyWSHandler, TransportWSHandler, WebsocketLimits
from app.settings import Settings

if TYPE_CHECKING:
    from app.bootstrap import Container

logger = logging.getLogger("bookworm.graphql")

POSITION_HEADER = "bookworm-position"
CACHE_HEADER = "bookworm-cache"  # HIT: answered from the response cache; MISS: run, and its answer kept
PLAIN_ACK: UnsetType = UNSET  # on_ws_connect's answer for a connection_ack without a payload
SUBSCRIPTION_OVER_HTTP = (
    "A subscription needs a stream: ask for one with `Accept: text/event-stream` (GraphQL over SSE) or "
    "`Accept: multipart/mixed;subscriptionSpec=1.0`, or subscribe over a websocket on this path "
    "(graphql-transport-ws or graphql-ws)."
)
TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
TOO_MANY_WAITING = "This client has too many requests running and waiting; send fewer at once."
BEYOND_NEWEST = "Header Bookworm-Position is beyond the newest event: not a position Bookworm returned."
UNEXPECTED = "Unexpected error. It has been logged; the request may be retried."
CLIENT_LEFT = "The connection closed before the request's body was read."
READ_MODELS = tuple(PROJECTIONS)  # a Bookworm-Position header waits for every read model
CATALOG = "catalog"  # the read model whose answers the response cache keeps
POSTED = frozenset({OperationType.QUERY, OperationType.MUTATION})  # what a POST may run without a stream


class BodyTooLarge(Exception):
    """The request body passed settings.max_body_bytes."""


class BadBody(Exception):
    """The request body is JSON, but not a GraphQL request object."""


class Unauthenticated(Exception):
    """The request sent a bearer token that does not verify; the message says why."""


class BookwormGraphQL(GraphQL[Context, None]):
    """Serve GraphQL over HTTP (GET/POST), graphql-transport-ws and graphql-ws on one path."""

    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, schema: BaseSchema, settings: Settings) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            keep_alive=True,
            keep_alive_interval=15,
            connection_init_wait_timeout=timedelta(seconds=settings.connection_init_timeout),
        )
        self.settings = settings
        self.ws_limits = WebsocketLimits(settings)
        self.streams = HTTPStreams(settings, self.ws_limits)
        self.keys = resolve_keys(settings)
        self.tokens = VerifiedTokens(self.keys, size=settings.verified_token_cache)
        self.fair_share = FairShare(settings.client_requests_running, settings.client_requests_waiting)
        self.ide = graphiql_page(self.graphql_ide_html, settings)
        self.lean = True  # False: every request takes strawberry's whole path (tests compare the two)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.ws_limits.serve(scope, receive, send, super().__call__)
            return
        started = time.perf_counter()
        request = Request(scope, receive=self._limited(scope, receive))
        try:
            response = await self._respond(request)
            if streaming(request):
                # A stream is answered once it opens: how long it then lives is no request's latency.
                metrics.answered(request, response.status_code, time.perf_counter() - started)
                await response(scope, receive, send)
                return
            await response(scope, receive, send)
            metrics.answered(request, response.status_code, time.perf_counter() - started)
        finally:
            await close_stream(request)  # whatever ended the response, its stream ends with it

    async def _respond(self, request: Request) -> Response:
        media_type = negotiate(request.headers.get("accept"))
        try:
            principal = self.authenticate(request.headers.get("authorization"))
            sign_in(request, principal)
            payer = client_key(principal, ip_of(request, request.state.container.proxies))
            async with self.fair_share.turn(payer):
                position = await self._wait_for_position(request, payer)
                return await self._answer(request, principal, payer, position, media_type)
        except HTTPException as e:
            return error_response(e.status_code, e.reason, media_type)
        except Unauthenticated as e:
            return unauthenticated_response(str(e), media_type)
        except BodyTooLarge:
            limit = self.settings.max_body_bytes
            return error_response(413, f"The request body is larger than {limit} bytes.", media_type)
        except BadBody as e:
            return error_response(400, str(e), media_type)
        except TooManyWaiting:
            return error_response(429, TOO_MANY_WAITING, media_type, code=TOO_MANY_REQUESTS, retry_after=1)
        except Refused as e:
            return error_response(e.status, e.message, media_type, code=e.code, retry_after=e.retry_after)
        except ClientDisconnect:
            # The client left while its body was being read: no one reads this answer, nothing went wrong.
            return error_response(400, CLIENT_LEFT, media_type)
        except Exception:
            # Strawberry's request parsing may fail in ways its own checks did not foresee; the client
            # still gets a typed JSON answer, and the trace goes to the log only.
            logger.exception("unexpected error while answering %s %s", request.method, request.url.path)
            return error_response(500, UNEXPECTED, media_type, code="INTERNAL_SERVER_ERROR")

    def _limited(self, scope: Scope, receive: Receive) -> Receive:
        limit = self.settings.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge
            return message

        return limited_receive

    async def _answer(
        self, request: Request, principal: Principal, payer: str, position: Position | None, media_type: str
    ) -> Response:
        """Answer from the response cache when it holds a current answer, else run the request (and keep
        its answer when it may be kept)."""
        container = request.state.container
        cache = container.response_cache
        key = await self._cache_key(request, principal) if cache.enabled else None
        if key is None:
            return await self._run(request)
        entry = cache.find(key, position)
        if entry is not None:
            charge = await container.budgets.charge(payer, entry.cost)
            if charge.allowed:
                metrics.note_operation(request, entry.operation)
                return cached_response(entry, charge, media_type)
            # Out of budget: the run below refuses it, as it refuses any request.
        reading = cache.begin(container.positions.known(CATALOG))
        if reading is None:
            return await self._run(request)
        request.scope[READING_KEY], request.state.cache_key = reading, key
        reads.record(reading.tags)
        response = await self._run(request)
        if getattr(request.state, "cache_kept", False):
            response.headers[CACHE_HEADER] = "MISS"
        return response

    async def _run(self, request: Request) -> Response:
        """Run the request: a query or mutation seen before, posted as plain JSON, by the lean path; all
        else by strawberry's."""
        request_data = await lean_request(request, self.settings.max_query_tokens) if self.lean else None
        if request_data is None:
            return await self.run(request)
        return await self._run_lean(request, request_data)

    async def _run_lean(self, request: Request, request_data: GraphQLRequestData) -> Response:
        """strawberry's steps for one plain JSON operation, through the same hooks, without what `run`
        does for every other kind of request (the IDE, GET, uploads, batches, streams): the body's
        content type parsed with `email`, the stream transports looked for in the headers, runtime
        Protocol checks of the result. An operation known from earlier requests skips strawberry's
        `execute` too (app/schema/known.py)."""
        adapter = self.request_adapter_class(request)
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, response=sub_response)
        known = getattr(self.schema, "known", None)
        result = None if known is None else await known.execute(request_data, context, POSTED)
        if result is None:
            result = await self.execute_operation(request, adapter, request_data, context, None, sub_response)
        # A plain JSON request never streams (lean_request saw no stream in its Accept), nor batches.
        assert isinstance(result, ExecutionResult)
        response_data = await self.process_result(request, result)
        if result.errors:
            self._handle_errors(result.errors, response_data)
        return self.create_response(response_data, sub_response)

    async def _cache_key(self, request: Request, principal: Principal) -> Hashable | None:
        """The request as sent, and the caller's roles; None for what is never cached (a batch, say).

        `Cache-Control: no-cache` (or `no-store`) asks for a fresh answer: the cache is not used at all.
        """
        control = request.headers.get("cache-control")
        if control is not None and ("no-cache" in control or "no-store" in control):
            return None
        accept = request.headers.get("accept")
        if self.streams.transport(accept) is not None and not accepts_json(accept):
            return None  # a client that reads only a stream: a kept JSON answer is not for it
        if request.method == "GET":
            return ("GET", request.url.query, principal.roles)
        if request.method != "POST":
            return None
        body = await request.body()
        if body[:1] != b"{":
            return None  # a batch (or not JSON at all)
        return ("POST", request.headers.get("content-type"), body, principal.roles)

    async def _wait_for_position(self, request: Request, payer: str) -> Position | None:
        raw = request.headers.get(POSITION_HEADER)
        if raw is None:
            return None
        try:
            position = parse_cursor(raw.strip())
        except BadCursor:
            raise HTTPException(
                400, f"Header Bookworm-Position is not a position Bookworm returned: {raw[:40]!r}"
            ) from None
        container = request.state.container
        await self._charge_wait(payer, container)
        if position > await container.event_store.newest():
            raise HTTPException(400, BEYOND_NEWEST)
        positions = container.positions
        timeout = self.settings.read_your_writes_timeout
        try:
            behind = await positions.wait_all(READ_MODELS, position, timeout)
        except TooManyWaiters as e:
            raise HTTPException(503, e.message) from None
        except (OSError, TimeoutError, DomainError):
            logger.warning("cannot check the read models' positions", exc_info=True)
            raise HTTPException(503, "PostgreSQL cannot be reached right now; retry later.") from None
        if behind:
            message = f"The {behind[0]} read model did not reach position {position} within {timeout:g} s."
            raise HTTPException(503, message)
        return position

    async def _charge_wait(self, payer: str, container: Container) -> None:
        """A wait holds a request open: it costs its caller budget before it starts."""
        charge = await container.budgets.charge(payer, self.settings.position_wait_cost)
        if not charge.allowed:
            error = rate_limited(charge)
            raise Refused(429, error.message, RATE_LIMITED, retry_after=charge.retry_after)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            parsed = super().parse_json(data)
        except RecursionError:
            raise BadBody("The request body is nested too deeply.") from None
        if not isinstance(parsed, dict | list):
            raise BadBody("The request body must be a JSON object with a `query` member.")
        return parsed

    def encode_json(self, data: object) -> str:
        encoded = data.encode() if isinstance(data, EncodedData) else encode(data)
        return cap_response(encoded, data, self.settings.max_response_bytes)

    async def render_graphql_ide(self, request: Request) -> Response:
        response = HTMLResponse(self.ide.html)
        response.headers["content-security-policy"] = self.ide.policy
        return response

    def authenticate(self, authorization: object) -> Principal:
        """Return the caller an Authorization value names; anonymous when there is none."""
        if authorization is None or authorization == "":
            return ANONYMOUS
        scheme, _, token = str(authorization).strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Send the token as `Authorization: Bearer <token>`.")
        try:
            return self.tokens.verify(token.strip())
        except InvalidToken as e:
            raise Unauthenticated(str(e)) from None

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        return Context.build(request.state.container, request)

    async def on_ws_connect(self, context: Context) -> UnsetType:
        """Sign the websocket in from its connection_init payload; refuse a token that fails."""
        params = context.connection_params or {}
        authorization = params.get("Authorization", params.get("authorization"))
        if authorization is None and context.request is not None:
            # Clients that can set headers on the upgrade request may sign in there instead.
            authorization = context.request.headers.get("authorization")
        try:
            context.principal = self.authenticate(authorization)
        except Unauthenticated as e:
            raise ConnectionRejectionError(unauthenticated_error(str(e))) from None
        if context.request is not None:
            sign_in(context.request, context.principal)
        return PLAIN_ACK

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = negotiate(request.headers.get("accept"))
        return sub_response

    async def execute_operation(
        self,
        request: Request,
        request_adapter: Any,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        accept = request.headers.get("accept")
        transport = self.streams.transport(accept)
        if transport is None or not isinstance(request_data, GraphQLRequestData):
            return await super().execute_operation(
                request, request_adapter, request_data, context, root_value, sub_response
            )
        kind = self._operation_type(request_data)
        if kind in (OperationType.QUERY, OperationType.MUTATION) and accepts_json(accept):
            # A client that reads JSON as well (urql asks for every type at once): the plain answer.
            return await super().execute_operation(
                request, request_adapter, request_data, context, root_value, sub_response
            )
        opened = await self._open_stream(
            request, request_adapter.method, request_data, context, transport, kind
        )
        if not isinstance(opened, HTTPStream):
            sub_response.status_code = 400  # a request error; a refusal's own status (429, 503) wins
        return opened

    def _operation_type(self, request_data: GraphQLRequestData) -> OperationType | None:
        query, name = request_data.query, request_data.operation_name
        try:
            return operation_type(query, name, self.settings.max_query_tokens)
        except CannotGetOperationTypeError as e:
            raise HTTPException(400, e.as_http_error_reason()) from None

    async def _open_stream(
        self,
        request: Request,
        method: HTTPMethod,
        request_data: GraphQLRequestData,
        context: Context,
        transport: Transport,
        kind: OperationType | None,
    ) -> ExecutionResult | HTTPStream:
        """Stream the operation's results, or return its request error (answered as JSON)."""
        allowed = OperationType.from_http(method)
        if kind is not None and kind not in allowed:  # a mutation sent with GET
            raise HTTPException(405, InvalidOperationTypeError(kind).as_http_error_reason(method))
        # A stream lives long: each result reads the rows afresh, as over a websocket.
        context.loaders = Loaders(context.container.catalog, cache=False)
        opened = await self.streams.open(
            self.schema,
            request_data,
            context,
            transport,
            allowed,
            subscription=kind is OperationType.SUBSCRIPTION,
            render=partial(self.process_result, request),
            encode_json=self.encode_json_string,
        )
        if isinstance(opened, HTTPStream):
            opened.on_streaming = request.scope.get("state", {}).get(LEAVE_IN_FLIGHT, opened.on_streaming)
        return opened

    async def _create_streaming_response(
        self, request: Request, result: Any, protocol: Any, sub_response: Response
    ) -> Response:
        # strawberry's hook for a result that streams: ours is an HTTPStream, which knows its transport.
        assert isinstance(result, HTTPStream)
        return StreamingResponse(result, headers=dict(result.transport.headers))

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        # Plain HTTP answers queries and mutations; a subscription needs a stream (websockets here).
        allowed = OperationType.from_http(request_adapter.method) - {OperationType.SUBSCRIPTION}
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as e:
            raise HTTPException(400, e.as_http_error_reason()) from None
        except InvalidOperationTypeError as e:
            if e.operation_type is OperationType.SUBSCRIPTION:
                raise Refused(400, SUBSCRIPTION_OVER_HTTP, "OPERATION_NOT_SUPPORTED") from None
            # GraphQL-over-HTTP: a mutation sent with GET is 405, not 400.
            status = 405 if request_adapter.method == "GET" else 400
            raise HTTPException(status, e.as_http_error_reason(request_adapter.method)) from None
        except MissingQueryError:
            raise HTTPException(400, "No GraphQL query found in the request") from None

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        reading = reading_of(request)
        if reading is not None and reading.cacheable and not result.errors and result.data is not None:
            # Encoded once: the cache keeps these bytes, and the response is written around them.
            data = encode(result.data)
            cache = request.state.container.response_cache
            request.state.cache_kept = cache.keep(request.state.cache_key, reading, data.encode())
            return cast("GraphQLHTTPResponse", EncodedData(response, data))  # a dict, as strawberry's
        if is_request_error(result):
            # Nothing was executed, so the response carries no `data` entry at all.
            response.pop("data", None)
        return response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        media_type = sub_response.media_type or JSON
        response.headers["content-type"] = media_type
        if media_type == GRAPHQL_RESPONSE and isinstance(response_data, dict) and "data" not in response_data:
            response.status_code = 400
        if isinstance(response_data, dict):
            refusal_status(response, response_data)
        return response
