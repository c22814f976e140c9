"""The typed per-request (or per-websocket) context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import strawberry
from starlette.requests import Request
from starlette.websockets import WebSocket

from app.admission.clients import TrustedProxies, client_ip, client_key
from app.identity import ANONYMOUS, Principal
from app.schema.loaders import Loaders

if TYPE_CHECKING:
    from app.bootstrap import Container


@dataclass
class Context:
    container: Container
    loaders: Loaders
    principal: Principal
    request: Request | WebSocket | None = None
    # A websocket's connection_init payload; strawberry sets it, the view reads the token from it.
    connection_params: dict[str, Any] | None = None
    # The caller's address: the peer's, or X-Forwarded-For's behind a trusted proxy.
    ip: str = "unknown"

    @property
    def actor(self) -> str:
        return self.principal.actor

    @property
    def client_key(self) -> str:
        """Who pays for this operation: the signed-in user, else the caller's IP."""
        return client_key(self.principal, self.ip)

    @classmethod
    def build(cls, container: Container, request: Request | WebSocket | None = None) -> Context:
        """Create a context; websocket contexts live long, so their loaders batch but never cache."""
        long_lived = isinstance(request, WebSocket)
        return cls(
            container=container,
            loaders=Loaders(container.catalog, cache=not long_lived),
            principal=principal_of(request),
            request=request,
            ip=ip_of(request, container.proxies),
        )


IP_KEY = "bookworm.ip"  # the scope entry of the caller's address: the view's payer and the context's ip


def ip_of(request: Request | WebSocket | None, proxies: TrustedProxies) -> str:
    """The caller's IP address, believing X-Forwarded-For only from a trusted proxy.

    An HTTP request's is worked out once and kept in its scope, where the view and the context both
    read it. A websocket's is read once, by its one context: writing it into the scope would grow the
    scope's dict by about 0.75 KiB for the socket's whole life (bench/cohorts.py, idle sockets).
    """
    if request is None:
        return "unknown"
    scope = request.scope
    ip: str | None = scope.get(IP_KEY)
    if ip is None:
        peer = request.client.host if request.client else None
        forwarded = ",".join(request.headers.getlist("x-forwarded-for")) or None
        ip = client_ip(peer, forwarded, proxies)
        if scope["type"] == "http":
            scope[IP_KEY] = ip
    return ip


PRINCIPAL = "principal"  # the request.state attribute that holds the verified caller


def principal_of(request: Request | WebSocket | None) -> Principal:
    """Return who is acting: the principal the view verified from the bearer token, else anonymous.

    A websocket starts anonymous; the view signs it in from its connection_init payload.
    """
    if request is None:
        return ANONYMOUS
    principal = getattr(request.state, PRINCIPAL, ANONYMOUS)
    assert isinstance(principal, Principal)
    return principal


def sign_in(request: Request | WebSocket, principal: Principal) -> None:
    """Record the verified caller of `request`, for principal_of."""
    setattr(request.state, PRINCIPAL, principal)


Info: TypeAlias = strawberry.Info[Context, None]
