"""One GraphQL request over HTTP: what its operation is labelled and whether it failed, noted on the request
while it runs, recorded once it is answered."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from app.metrics.instruments import request_answered
from app.metrics.names import NONE

# The request's (operation label, failed), kept in its ASGI scope: a dict read, where request.state's
# attribute lookups cost a microsecond each.
SCOPE_KEY = "bookworm.metrics"
NO_OPERATION = (NONE, False)


def note_operation(request: HTTPConnection, label: str, *, failed: bool = False) -> None:
    """Note the label of the operation `request` ran, and whether its answer carries GraphQL errors."""
    request.scope[SCOPE_KEY] = (label, failed)


def answered(request: HTTPConnection, status: int, seconds: float) -> None:
    """Record `request`, answered with `status` after `seconds`; `(none)` when it ran no operation."""
    label, failed = request.scope.get(SCOPE_KEY, NO_OPERATION)
    request_answered(label, failed or status >= 400, seconds)
