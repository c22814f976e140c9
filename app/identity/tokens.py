"""Bearer tokens (JWT): verify one into a Principal, or issue one for development."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import jwt
from jwt.exceptions import InvalidSubjectError
from jwt.warnings import InsecureKeyLengthWarning

from app.identity.keys import HS256, TokenKeys
from app.identity.principal import CUSTOMER, Principal

CLOCK_SKEW = 30  # seconds of leeway on exp and nbf, for clocks that are slightly apart
DEFAULT_TTL = 86_400  # within Settings.max_token_lifetime's default, so issued tokens verify
TIME_CLAIMS = ("exp", "iat", "nbf")


class InvalidToken(Exception):
    """A bearer token that does not prove who the caller is; the message says why."""


def verify(token: str, keys: TokenKeys) -> Principal:
    """Check the token's signature and claims; return its principal or raise InvalidToken."""
    algorithm = _algorithm_of(token)
    key = keys.key_for(algorithm)
    if key is None:
        accepted = " or ".join(keys.algorithms)
        raise InvalidToken(f"The token is signed with {algorithm}; this server accepts only {accepted}.")
    try:
        with _short_keys_allowed():
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=keys.issuer,
                audience=keys.audience,
                leeway=CLOCK_SKEW,
                options={"require": ["sub", "exp"], "verify_aud": keys.audience is not None},
            )
    except jwt.PyJWTError as exc:
        raise InvalidToken(_reason(exc, keys)) from None
    check_lifetime(claims, keys.max_lifetime)
    return principal_from(claims)


def check_lifetime(claims: Mapping[str, Any], max_lifetime: float, now: float | None = None) -> None:
    """Refuse time claims that are not numbers, and a token that lives longer than `max_lifetime`."""
    for claim in TIME_CLAIMS:
        value = claims.get(claim)
        # PyJWT reads "1700000000" (a string) and true (a bool) as numbers; RFC 7519 says NumericDate.
        if claim in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidToken(f"The token's `{claim}` claim must be a number of seconds since the epoch.")
    issued_at = claims.get("iat")
    if issued_at is None:
        # Without iat the lifetime left is all we can see; allow for the issuer's clock being ahead.
        lifetime = claims["exp"] - (time.time() if now is None else now) - CLOCK_SKEW
    else:
        lifetime = claims["exp"] - issued_at
    if lifetime > max_lifetime:
        raise InvalidToken(
            f"The token is valid for {lifetime:.0f} s; this server accepts tokens valid for at most "
            f"{max_lifetime:g} s (exp - iat). Ask for a shorter-lived token."
        )


def principal_from(claims: Mapping[str, Any]) -> Principal:
    """Read the caller from verified claims: sub, name, email, email_verified and roles."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise InvalidToken("The token's `sub` claim must be a non-empty string.")
    name = claims.get("name") or claims.get("preferred_username") or subject
    email = claims.get("email")
    if not isinstance(name, str) or not (email is None or isinstance(email, str)):
        raise InvalidToken("The token's `name` and `email` claims must be strings.")
    expires_at = claims.get("exp")
    return Principal(
        subject=subject,
        name=name,
        email=email or None,
        # OIDC says boolean; some providers (Cognito) send the string "true".
        email_verified=_is_true(claims.get("email_verified")),
        roles=frozenset(roles_of(claims)),
        expires_at=float(expires_at) if isinstance(expires_at, int | float) else None,
    )


def _is_true(value: object) -> bool:
    # Not `value in (True, "true")`: 1 == True, and a claim of 1 is no boolean.
    return value is True or value == "true"


def roles_of(claims: Mapping[str, Any]) -> Iterator[str]:
    """Yield the roles of `roles` (a list or a space-separated string) and Keycloak's realm roles."""
    realm_access = claims.get("realm_access")
    keycloak = realm_access.get("roles") if isinstance(realm_access, Mapping) else None
    for value in (claims.get("roles"), keycloak):
        if value is None:
            continue
        if isinstance(value, str):
            value = value.split()
        if not isinstance(value, list) or not all(isinstance(role, str) for role in value):
            raise InvalidToken("The token's roles must be a list of strings or a space-separated string.")
        yield from value


def issue(
    secret: str,
    *,
    subject: str,
    name: str | None = None,
    email: str | None = None,
    email_verified: bool | None = None,
    roles: Iterable[str] = (CUSTOMER,),
    ttl: int = DEFAULT_TTL,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
) -> str:
    """Sign an HS256 token for `subject` that expires after `ttl` seconds.

    A development token vouches for its `email` (email_verified) unless `email_verified` is False.
    """
    issued_at = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": subject,
        "roles": list(roles),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + ttl,
    }
    if email is not None:
        claims["email_verified"] = email_verified is not False
    optional = {"name": name, "email": email, "iss": issuer, "aud": audience}
    claims.update({claim: value for claim, value in optional.items() if value is not None})
    with _short_keys_allowed():
        return jwt.encode(claims, secret, algorithm=HS256)


def _algorithm_of(token: str) -> str:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken("The token is malformed: expected a JWT (header.payload.signature).") from None
    algorithm = header.get("alg")
    if not isinstance(algorithm, str):
        raise InvalidToken("The token's header names no signing algorithm (alg).")
    if algorithm.lower() == "none":
        raise InvalidToken("The token is unsigned (alg: none); only signed tokens are accepted.")
    return algorithm


def _reason(exc: jwt.PyJWTError, keys: TokenKeys) -> str:
    """Turn PyJWT's exception into the message the client sees."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "The token has expired; sign in again."
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "The token is not valid yet (its nbf or iat is in the future)."
    if isinstance(exc, jwt.InvalidSignatureError):
        return "The token's signature does not verify: it was not signed by a key this server trusts."
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"The token has no `{exc.claim}` claim; it is required."
    if isinstance(exc, jwt.InvalidIssuerError):
        return f"The token was not issued by {keys.issuer!r}."
    if isinstance(exc, jwt.InvalidAudienceError):
        return f"The token is not meant for this server: its audience must include {keys.audience!r}."
    if isinstance(exc, jwt.DecodeError) and "(exp)" in str(exc):
        return "The token's `exp` claim must be a number of seconds since the epoch."
    if isinstance(exc, InvalidSubjectError):
        return "The token's `sub` claim must be a non-empty string."
    if isinstance(exc, jwt.InvalidKeyError | jwt.InvalidAlgorithmError):
        return "The token's algorithm does not fit the key this server checks it with."
    return "The token is malformed: its claims cannot be read."


@contextmanager
def _short_keys_allowed() -> Iterator[None]:
    # resolve_keys() logs a short secret once; PyJWT would otherwise warn on every token.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        yield
