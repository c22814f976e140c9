"""The typed per-request (or per-websocket) context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

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


def principal_of(request: Request | WebSocket | None) -> Principal:
    """Return who is acting; the one place authentication plugs in."""
    return ANONYMOUS


Info: TypeAlias = strawberry.Info[Context, None]
