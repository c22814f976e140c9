"""The principal: the verified caller of one request or websocket connection."""

from __future__ import annotations

from dataclasses import dataclass

from app.ids import customer_id_of

ADMIN = "admin"
CUSTOMER = "customer"


@dataclass(frozen=True, kw_only=True)
class Principal:
    """A caller. `subject` is None for an anonymous caller; any signed-in caller is a customer."""

    subject: str | None = None
    name: str = ""
    email: str | None = None
    # The identity provider vouches that `email` is the caller's (the `email_verified` claim).
    email_verified: bool = False
    roles: frozenset[str] = frozenset()
    # When the token that proved who this is stops being valid (seconds since the epoch); None when no
    # token did (anonymous). A websocket signed in with the token is closed at that moment.
    expires_at: float | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.subject is not None

    @property
    def is_admin(self) -> bool:
        return self.is_authenticated and ADMIN in self.roles

    @property
    def customer_id(self) -> str:
        """The caller's customer and buyer id; only meaningful when signed in."""
        if self.subject is None:
            raise ValueError("an anonymous caller has no customer id")
        return customer_id_of(self.subject)

    @property
    def actor(self) -> str:
        """What event metadata and idempotency keys record as the actor."""
        return "anonymous" if self.subject is None else f"user:{self.subject}"


ANONYMOUS = Principal()
