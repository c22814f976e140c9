"""Who may do what: the checks resolvers make before they dispatch a command or read a model."""

from __future__ import annotations

from app.domain.errors import ForbiddenError
from app.identity import Principal
from app.schema.context import Info

SIGN_IN = "Sign in: this needs a bearer token (header Authorization: Bearer <token>)."
ADMINS_ONLY = "Only an admin may do this."


def require_customer(info: Info) -> Principal:
    """Return the signed-in caller; raise ForbiddenError for an anonymous one."""
    principal = info.context.principal
    if not principal.is_authenticated:
        raise ForbiddenError(SIGN_IN)
    return principal


def require_admin(info: Info) -> Principal:
    """Return the caller when it is an admin; raise ForbiddenError otherwise."""
    principal = require_customer(info)
    if not principal.is_admin:
        raise ForbiddenError(ADMINS_ONLY)
    return principal
