"""Which requests the /graphql view runs by its lean path: a query or mutation this process parsed before,
posted as plain JSON. Anything else (GET, another content type, a batch, a stream, a document with a
subscription, a body strawberry would refuse) is left to strawberry's whole path, which also gives it its
error.

Over POST, strawberry's `run` does nothing for a mutation that it does not do for a query: both are
allowed, neither streams, and both go through the same `execute_operation` and `process_result`."""

from __future__ import annotations

import json

from graphql import DocumentNode, OperationDefinitionNode, OperationType
from starlette.requests import Request
from strawberry.http import GraphQLRequestData

from app.admission.parsing import parsed_before

PLAIN_JSON = frozenset(
    {"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"}
)
STREAM_TYPES = ("text/event-stream", "multipart/mixed")  # an Accept naming one may ask for a stream


async def lean_request(request: Request, max_tokens: int) -> GraphQLRequestData | None:
    """The request's operation when the lean path may run it, else None."""
    if request.method != "POST" or request.headers.get("content-type") not in PLAIN_JSON:
        return None
    accept = request.headers.get("accept")
    if accept is not None and any(kind in accept.lower() for kind in STREAM_TYPES):
        return None
    body = await request.body()
    if body[:1] != b"{":
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None  # strawberry's path refuses it with its own message
    return _query_seen_before(data, max_tokens) if isinstance(data, dict) else None


def _query_seen_before(data: dict[str, object], max_tokens: int) -> GraphQLRequestData | None:
    query, variables, name = data.get("query"), data.get("variables"), data.get("operationName")
    extensions = data.get("extensions")
    if not isinstance(query, str) or not isinstance(name, str | None):
        return None
    if not isinstance(variables, dict | None) or not isinstance(extensions, dict | None):
        return None
    document = parsed_before(query, max_tokens)
    if document is None or not without_subscriptions(document):
        return None
    return GraphQLRequestData(query=query, variables=variables, operation_name=name, extensions=extensions)


def without_subscriptions(document: DocumentNode) -> bool:
    """Tell whether every operation of the document is a query or a mutation: a subscription streams."""
    return all(
        definition.operation is not OperationType.SUBSCRIPTION
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    )
