"""The /graphql view without a server: what it answers a client that leaves before its body is read."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.requests import Request
from starlette.types import Message

from app.admission.clients import TrustedProxies
from app.schema import build_schema
from app.schema.view import BookwormGraphQL
from app.settings import Settings


async def test_a_client_that_leaves_while_its_body_is_read_is_no_unexpected_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(graphiql=False)
    view = BookwormGraphQL(build_schema(settings), settings)
    container = SimpleNamespace(
        proxies=TrustedProxies.parse(""), response_cache=SimpleNamespace(enabled=False), catalog=None
    )
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
        "client": ("127.0.0.1", 1234),
        "state": {"container": container},
    }
    chunks: list[Message] = [
        {"type": "http.request", "body": b'{"query": ', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return chunks.pop(0)

    response = await view._respond(Request(scope, receive=view._limited(scope, receive)))

    assert response.status_code == 400
    assert not [record for record in caplog.records if record.levelname == "ERROR"]
