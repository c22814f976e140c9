"""HTTP answers of the /graphql endpoint: media type negotiation, request errors in the GraphQL response
shape with a typed code, and the status codes of admission refusals."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from starlette.responses import JSONResponse, Response
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from app.admission.budget import Charge
from app.admission.limits import CODE as QUERY_TOO_COMPLEX
from app.queries.response_cache import Entry
from app.schema.admission import RATE_LIMITED, SERVER_BUSY

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
JSON_TYPES = frozenset({GRAPHQL_RESPONSE, JSON, "application/*", "*/*"})


class Refused(Exception):
    """A request refused before it ran, with its HTTP status, message and typed code."""

    def __init__(self, status: int, message: str, code: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.retry_after = status, message, code, retry_after


def refusal_status(response: Response, response_data: GraphQLHTTPResponse) -> None:
    """Give an admission refusal its HTTP status: 429 or 503 with Retry-After, 400 for a query too complex."""
    errors: list[dict[str, Any]] = response_data.get("errors") or []  # type: ignore[assignment]
    for error in errors:
        extensions = error.get("extensions") or {}
        code = extensions.get("code")
        if code in (RATE_LIMITED, SERVER_BUSY):
            response.status_code = 429 if code == RATE_LIMITED else 503
            response.headers["retry-after"] = str(max(1, math.ceil(extensions.get("retryAfter", 1))))
        elif code == QUERY_TOO_COMPLEX:
            response.status_code = 400


def is_request_error(result: ExecutionResult) -> bool:
    """Tell whether the request failed before execution (syntax, validation, variables)."""
    return result.data is None and bool(result.errors) and all(e.path is None for e in result.errors or ())


def negotiate(accept: str | None) -> str:
    """Pick the response media type: the GraphQL one when the client names it, else JSON."""
    return GRAPHQL_RESPONSE if GRAPHQL_RESPONSE in _accepted(accept) else JSON


def accepts_json(accept: str | None) -> bool:
    """Tell whether a client reads a JSON answer: it names a JSON type, a wildcard, or nothing at all."""
    return not accept or bool(_accepted(accept) & JSON_TYPES)


def _accepted(accept: str | None) -> frozenset[str]:
    """The media types an Accept header names with a quality above zero, in lower case."""
    if accept is None or len(accept) <= KEPT_ACCEPT_LENGTH:
        return _accepted_kept(accept)
    return _parse_accept(accept)


KEPT_ACCEPT_LENGTH = 200


@lru_cache(maxsize=256)  # a client sends the same Accept with every request: a usual value is parsed once
def _accepted_kept(accept: str | None) -> frozenset[str]:
    return _parse_accept(accept)


def _parse_accept(accept: str | None) -> frozenset[str]:
    accepted = set()
    for part in (accept or "").split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        if _quality(params) > 0:
            accepted.add(media.lower())
    return frozenset(accepted)


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


# The code of each request error, so clients can tell them apart without parsing messages.
STATUS_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "BODY_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    503: "UNAVAILABLE",
}


def error_response(
    status: int, message: str, media_type: str, code: str | None = None, retry_after: float | None = None
) -> Response:
    """A request error in the GraphQL response shape, so clients parse every answer the same way."""
    if status == 400 and message == "Unsupported content type":
        status, message = 415, "Send the request as application/json (or use GET)."
    error = {"message": message, "extensions": {"code": code or STATUS_CODES.get(status, "BAD_REQUEST")}}
    response = JSONResponse({"errors": [error]}, status_code=status, media_type=media_type)
    if status == 405:
        response.headers["allow"] = "POST"
    if status == 503 or retry_after is not None:
        response.headers["retry-after"] = str(max(1, math.ceil(retry_after or 1)))
    return response


def cached_response(entry: Entry, charge: Charge, media_type: str) -> Response:
    """A kept answer's `data`, with the `extensions.cost` of the charge this request just paid."""
    cost = charge.extensions()
    cost["requestedQueryCost"] = entry.requested_cost
    extensions = json.dumps({"cost": cost}, separators=(",", ":")).encode()
    body = b'{"data":' + entry.data + b',"extensions":' + extensions + b"}"
    return Response(body, media_type=media_type, headers={"bookworm-cache": "HIT"})


class EncodedData(dict[str, Any]):
    """A response whose `data` is already encoded (for the response cache): written around that text."""

    def __init__(self, response: Mapping[str, Any], data: str) -> None:
        super().__init__(response)
        self.data = data

    def encode(self) -> str:
        """The response as JSON: its `data` text, then the rest of its members (`extensions`)."""
        rest = {name: value for name, value in self.items() if name != "data"}
        tail = json.dumps(rest, separators=(",", ":"))[1:] if rest else "}"
        return '{"data":' + self.data + ("," + tail if rest else tail)
