"""The /graphql endpoint: strawberry's ASGI view plus GraphQL-over-HTTP status codes and our headers."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema import BaseSchema
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from app.domain.errors import DomainError
from app.identity import ANONYMOUS, Principal
from app.identity.keys import resolve_keys
from app.identity.tokens import InvalidToken, verify
from app.projections import PROJECTIONS
from app.queries.consistency import wait_for_position
from app.schema.context import Context, sign_in
from app.schema.positions import BadCursor, parse_cursor
from app.schema.websockets import LegacyWSHandler, TransportWSHandler, WebsocketLimits
from app.settings import Settings

logger = logging.getLogger("bookworm.graphql")

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
POSITION_HEADER = "bookworm-position"
PLAIN_ACK: UnsetType = UNSET  # on_ws_connect's answer for a connection_ack without a payload
READ_MODELS = tuple(PROJECTIONS)  # a Bookworm-Position header waits for every read model


class BodyTooLarge(Exception):
    """The request body passed settings.max_body_bytes."""


class Unauthenticated(Exception):
    """The request sent a bearer token that does not verify; the message says why."""


class BookwormGraphQL(GraphQL[Context, None]):
    """Serve GraphQL over HTTP (GET/POST), graphql-transport-ws and graphql-ws on one path."""

    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, schema: BaseSchema, settings: Settings) -> None:
        super().__init__(
            schema,
            keep_alive=True,
            keep_alive_interval=15,
            connection_init_wait_timeout=timedelta(seconds=settings.connection_init_timeout),
        )
        self.settings = settings
        self.ws_limits = WebsocketLimits(settings)
        self.keys = resolve_keys(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.ws_limits.serve(scope, receive, send, super().__call__)
            return
        request = Request(scope, receive=self._limited(scope, receive))
        response = await self._respond(request)
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> Response:
        media_type = negotiate(request.headers.get("accept"))
        try:
            sign_in(request, self.authenticate(request.headers.get("authorization")))
            await self._wait_for_position(request)
            return await self.run(request)
        except HTTPException as e:
            return error_response(e.status_code, e.reason, media_type)
        except Unauthenticated as e:
            return unauthenticated_response(str(e), media_type)
        except BodyTooLarge:
            limit = self.settings.max_body_bytes
            return error_response(413, f"The request body is larger than {limit} bytes.", media_type)

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

    async def _wait_for_position(self, request: Request) -> None:
        raw = request.headers.get(POSITION_HEADER)
        if raw is None:
            return
        try:
            position = parse_cursor(raw.strip())
        except BadCursor:
            raise HTTPException(
                400, f"Header Bookworm-Position is not a position Bookworm returned: {raw[:40]!r}"
            ) from None
        pool = request.state.container.pool
        timeout = self.settings.read_your_writes_timeout
        for projection in READ_MODELS:
            try:
                reached = await wait_for_position(pool, projection, position, timeout)
            except (OSError, TimeoutError, DomainError):
                logger.warning("cannot check the %s read model's position", projection, exc_info=True)
                raise HTTPException(503, "PostgreSQL cannot be reached right now; retry later.") from None
            if not reached:
                message = (
                    f"The {projection} read model did not reach position {position} within {timeout:g} s."
                )
                raise HTTPException(503, message)

    def authenticate(self, authorization: object) -> Principal:
        """Return the caller an Authorization value names; anonymous when there is none."""
        if authorization is None or authorization == "":
            return ANONYMOUS
        scheme, _, token = str(authorization).strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Send the token as `Authorization: Bearer <token>`.")
        try:
            return verify(token.strip(), self.keys)
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

    async def execute_single(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        try:
            return await super().execute_single(*args, **kwargs)
        except HTTPException as e:
            # GraphQL-over-HTTP: a mutation sent with GET is 405, not 400.
            if (
                isinstance(e.__cause__, InvalidOperationTypeError)
                and kwargs["request_adapter"].method == "GET"
            ):
                raise HTTPException(405, e.reason) from None
            raise

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
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
        return response


def is_request_error(result: ExecutionResult) -> bool:
    """Tell whether the request failed before execution (syntax, validation, variables)."""
    return result.data is None and bool(result.errors) and all(e.path is None for e in result.errors or ())


def negotiate(accept: str | None) -> str:
    """Pick the response media type: the GraphQL one when the client names it, else JSON."""
    for part in (accept or "").split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        if media.lower() == GRAPHQL_RESPONSE and _quality(params) > 0:
            return GRAPHQL_RESPONSE
    return JSON


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def unauthenticated_error(message: str) -> dict[str, object]:
    """The GraphQL error of a bad bearer token."""
    return {"message": message, "extensions": {"code": "UNAUTHENTICATED"}}


def unauthenticated_response(message: str, media_type: str) -> Response:
    """401 with the reason, as RFC 6750 asks for a token that is expired, forged or malformed."""
    body = {"errors": [unauthenticated_error(message)]}
    response = JSONResponse(body, status_code=401, media_type=media_type)
    response.headers["www-authenticate"] = 'Bearer error="invalid_token"'
    return response


def error_response(status: int, message: str, media_type: str) -> Response:
    """A request error in the GraphQL response shape, so clients parse every answer the same way."""
    if status == 400 and message == "Unsupported content type":
        status, message = 415, "Send the request as application/json (or use GET)."
    body = {"errors": [{"message": message}]}
    response = JSONResponse(body, status_code=status, media_type=media_type)
    if status == 405:
        response.headers["allow"] = "POST"
    if status == 503:
        response.headers["retry-after"] = "1"
    return response
