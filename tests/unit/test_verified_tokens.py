"""The verified-token cache: a token's signature is checked once, and the cache never outlives `verify`."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

import jwt
import pytest

from app.identity.keys import TokenKeys
from app.identity.tokens import CLOCK_SKEW, InvalidToken
from app.identity.verified import VerifiedTokens

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
KEYS = TokenKeys(secret=SECRET)
NOW = 1_800_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def token(subject: str = "alice", *, exp: float = NOW + 600, key: str = SECRET, **more: Any) -> str:
    claims = {"sub": subject, "iat": int(NOW), "exp": int(exp), **more}
    return jwt.encode(claims, key, algorithm="HS256")


@pytest.fixture(autouse=True)
def frozen_jwt_time(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """PyJWT reads the time through datetime.now: the tests move it with the cache's clock."""
    clock = Clock(NOW)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Frozen:
            return cls.fromtimestamp(clock.now, tz or UTC)

    monkeypatch.setattr("jwt.api_jwt.datetime", Frozen)
    return clock


def test_a_verified_token_is_served_from_the_cache(
    monkeypatch: pytest.MonkeyPatch, frozen_jwt_time: Clock
) -> None:
    tokens = VerifiedTokens(KEYS, clock=frozen_jwt_time)
    first = tokens.verify(token())
    checked: list[str] = []
    monkeypatch.setattr("app.identity.verified.verify", lambda t, k: checked.append(t))
    assert tokens.verify(token()) is first
    assert checked == []


def test_an_expired_token_is_not_served_from_the_cache(frozen_jwt_time: Clock) -> None:
    tokens = VerifiedTokens(KEYS, clock=frozen_jwt_time)
    alice = token(exp=NOW + 60)
    assert tokens.verify(alice).subject == "alice"
    frozen_jwt_time.now = NOW + 60 + CLOCK_SKEW - 1
    assert tokens.verify(alice).subject == "alice"  # verify itself still accepts it (clock skew)
    frozen_jwt_time.now = NOW + 60 + CLOCK_SKEW
    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(alice)
    assert len(tokens) == 0


def test_a_refused_token_is_never_kept(frozen_jwt_time: Clock) -> None:
    tokens = VerifiedTokens(KEYS, clock=frozen_jwt_time)
    forged = token(key="another-secret-that-is-long-enough-for-hs256")
    for _ in range(2):
        with pytest.raises(InvalidToken, match="signature"):
            tokens.verify(forged)
    assert len(tokens) == 0


def test_a_token_signed_for_other_keys_is_refused_whatever_another_cache_holds(
    frozen_jwt_time: Clock,
) -> None:
    accepted = token()
    VerifiedTokens(KEYS, clock=frozen_jwt_time).verify(accepted)
    other = VerifiedTokens(TokenKeys(secret="x" * 40), clock=frozen_jwt_time)
    with pytest.raises(InvalidToken, match="signature"):
        other.verify(accepted)


def test_the_cache_is_bounded_and_keeps_the_recently_used(frozen_jwt_time: Clock) -> None:
    tokens = VerifiedTokens(KEYS, size=2, clock=frozen_jwt_time)
    alice, bob, carol = token("alice"), token("bob"), token("carol")
    tokens.verify(alice)
    tokens.verify(bob)
    tokens.verify(alice)  # alice is now the most recently used
    tokens.verify(carol)  # bob leaves
    assert len(tokens) == 2
    assert tokens._kept.keys() == {alice, carol}


def test_size_zero_keeps_nothing(frozen_jwt_time: Clock) -> None:
    tokens = VerifiedTokens(KEYS, size=0, clock=frozen_jwt_time)
    assert tokens.verify(token()).subject == "alice"
    assert len(tokens) == 0


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        VerifiedTokens(KEYS, size=-1)
