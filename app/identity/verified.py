"""Tokens already verified by this process, kept until they expire: a signature is checked once per token.

A client sends the same bearer token with every request; checking its signature and claims each time
(PyJWT: base64, JSON, HMAC or RSA, claim checks) was about a tenth of an API process's CPU per mutation.
Only tokens that verified are kept, each until the moment `verify` would refuse it as expired (its
`exp` plus the clock skew allowed), and at most `size` of them, the least recently used leaving first.
Nothing else makes a verified token invalid later: the keys are fixed for the life of the process, and
a token that stops verifying at all (an expired one) is checked again, and refused, with full rigour.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.identity.keys import TokenKeys
from app.identity.principal import Principal
from app.identity.tokens import CLOCK_SKEW, verify
from app.recent import Recent

DEFAULT_SIZE = 1_024


class VerifiedTokens:
    """Verify bearer tokens with `keys`, remembering up to `size` that verified until they expire."""

    def __init__(
        self, keys: TokenKeys, *, size: int = DEFAULT_SIZE, clock: Callable[[], float] = time.time
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._kept: Recent[str, tuple[Principal, float]] = Recent(size, "the verified-token cache")

    def __len__(self) -> int:
        return len(self._kept)

    def verify(self, token: str) -> Principal:
        """Return the principal of `token`, or raise InvalidToken as `tokens.verify` does."""
        kept = self._kept.get(token)
        now = self._clock()
        if kept is not None:
            principal, until = kept
            if now < until:
                return principal
            self._kept.discard(token)
        principal = verify(token, self._keys)
        self._keep(token, principal, now)
        return principal

    def _keep(self, token: str, principal: Principal, now: float) -> None:
        # `verify` requires `exp`; PyJWT accepts a token until `exp + leeway` has passed.
        if principal.expires_at is None:
            return
        until = principal.expires_at + CLOCK_SKEW
        if now < until:
            self._kept.put(token, (principal, until))
