"""The typed per-request (or per-websocket) context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import strawberry
from starlette.requests import Request
from starlette.websockets import WebSocket

from app.schema.loaders import Loaders

if TYPE_CHECKING:
    from app.bootstrap import Container

# No authentication yet: every request acts as this actor. Issue "JWT" replaces this one line.
ANONYMOUS = "anonymous"


@dataclass
class Context:
    container: Container
    loaders: Loaders
    actor: str
    request: Request | WebSocket | None = None

    @classmethod
    def build(cls, container: Container, request: Request | WebSocket | None = None) -> Context:
        """Create a context; websocket contexts live long, so their loaders batch but never cache."""
        long_lived = isinstance(request, WebSocket)
        return cls(
            container=container,
            loaders=Loaders(container.catalog, cache=not long_lived),
            actor=actor_of(request),
            request=request,
        )


def actor_of(request: Request | WebSocket | None) -> str:
    """Return who is acting; the one place authentication will plug in."""
    return ANONYMOUS


Info: TypeAlias = strawberry.Info[Context, None]
