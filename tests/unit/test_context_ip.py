"""The caller's address: kept in an HTTP request's scope; not a websocket's."""

from __future__ import annotations

from starlette.requests import Request
from starlette.websockets import WebSocket

from app.admission.clients import TrustedProxies
from app.schema.context import IP_KEY, ip_of

PROXY = TrustedProxies.parse("10.0.0.0/8")
HEADERS = [(b"x-forwarded-for", b"203.0.113.7")]


def scope(kind: str, peer: str) -> dict[str, object]:
    return {"type": kind, "path": "/graphql", "headers": HEADERS, "client": (peer, 4000), "query_string": b""}


async def never() -> dict[str, object]:
    raise AssertionError("nothing is read")


async def unused(message: object) -> None:
    raise AssertionError("nothing is sent")


def test_an_http_request_works_out_its_address_once_and_keeps_it_in_its_scope() -> None:
    request = Request(scope("http", "10.1.2.3"))
    assert ip_of(request, PROXY) == "203.0.113.7"  # forwarded by a trusted proxy
    assert request.scope[IP_KEY] == "203.0.113.7"
    request.scope[IP_KEY] = "198.51.100.1"
    assert ip_of(request, PROXY) == "198.51.100.1"  # read back, not worked out again


def test_a_websocket_works_out_its_address_without_growing_its_scope() -> None:
    websocket = WebSocket(scope("websocket", "10.1.2.3"), never, unused)
    keys = set(websocket.scope)
    assert ip_of(websocket, PROXY) == "203.0.113.7"
    assert set(websocket.scope) == keys


def test_an_untrusted_peer_is_its_own_address_whatever_it_forwards() -> None:
    assert ip_of(Request(scope("http", "192.0.2.9")), PROXY) == "192.0.2.9"
    assert ip_of(WebSocket(scope("websocket", "192.0.2.9"), never, unused), PROXY) == "192.0.2.9"
    assert ip_of(None, PROXY) == "unknown"
