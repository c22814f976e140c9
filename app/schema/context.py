"""The typed per-request (or per-websocket) context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import strawberry
from starlette.requests import Request
from starlette.websockets import WebSocket

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

    @property
    def actor(self) -> str:
        return self.principal.actor

    @classmethod
    def build(cls, container: Container, request: Request | WebSocket | None = None) -> Context:
        """Create a context; websocket contexts live long, so their loaders batch but never cache."""
        long_lived = isinstance(request, WebSocket)
        return cls(
            container=container,
            loaders=Loaders(container.catalog, cache=not long_lived),
            principal=principal_of(request),
            request=request,
        )


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
