"""Bearer tokens: what verifies, what is refused and why, and where the keys come from."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
import warnings
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.warnings import InsecureKeyLengthWarning

from app.identity import Principal
from app.identity.keys import (
    SECRET_FILE,
    KeyConfigError,
    TokenKeys,
    data_dir_secret,
    load_public_key,
    resolve_keys,
    signing_secret,
)
from app.identity.tokens import InvalidToken, issue, principal_from, verify
from app.settings import Settings

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
HOUR = 3600


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    given = {"sub": "alice", "name": "Alice", "email": "alice@example.com", "exp": now + HOUR, "iat": now}
    given.update(overrides)
    return {name: value for name, value in given.items() if value is not None}


def hs256(key: str = SECRET, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm="HS256")


def rs256(key: rsa.RSAPrivateKey, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm="RS256")


def refused(token: str, keys: TokenKeys) -> str:
    with pytest.raises(InvalidToken) as error:
        verify(token, keys)
    return str(error.value)


HS = TokenKeys(secret=SECRET)


def test_hs256_token_names_its_caller() -> None:
    expires = int(time.time()) + HOUR
    principal = verify(hs256(roles=["customer"], exp=expires), HS)

    assert principal == Principal(
        subject="alice",
        name="Alice",
        email="alice@example.com",
        roles=frozenset({"customer"}),
        expires_at=float(expires),
    )
    assert principal.is_authenticated and not principal.is_admin


def test_issued_token_round_trips() -> None:
    token = issue(SECRET, subject="root", name="Root", roles=["admin", "customer"], ttl=60)

    principal = verify(token, HS)

    assert (principal.subject, principal.name, principal.email) == ("root", "Root", None)
    assert principal.is_admin


def test_an_issued_token_vouches_for_its_address_unless_told_not_to() -> None:
    assert verify(issue(SECRET, subject="a", email="a@example.com"), HS).email_verified
    unverified = issue(SECRET, subject="a", email="a@example.com", email_verified=False)
    assert not verify(unverified, HS).email_verified
    assert not verify(issue(SECRET, subject="a"), HS).email_verified


@pytest.mark.parametrize(
    ("claim", "verified"), [(True, True), ("true", True), (False, False), ("yes", False), (1, False)]
)
def test_email_verified_is_read_from_its_claim(claim: object, verified: bool) -> None:
    now = int(time.time())
    claims = {"sub": "a", "email": "a@example.com", "email_verified": claim, "exp": now + HOUR, "iat": now}
    assert principal_from(claims).email_verified is verified
    del claims["email_verified"]
    assert principal_from(claims).email_verified is False


def test_roles_as_a_space_separated_string() -> None:
    assert verify(hs256(roles="admin customer"), HS).roles == {"admin", "customer"}


def test_keycloak_realm_roles() -> None:
    token = hs256(realm_access={"roles": ["admin", "offline_access"]}, name=None, preferred_username="kc")

    principal = verify(token, HS)

    assert principal.is_admin and principal.name == "kc"


def test_no_roles_is_a_plain_signed_in_caller() -> None:
    principal = verify(hs256(), HS)
    assert principal.roles == frozenset() and principal.is_authenticated


@pytest.mark.parametrize("roles", [7, ["admin", 3], {"admin": True}])
def test_malformed_roles_are_refused(roles: object) -> None:
    assert "roles" in refused(hs256(roles=roles), HS)


def test_expired() -> None:
    assert "expired" in refused(hs256(exp=int(time.time()) - HOUR), HS)


def test_not_yet_valid() -> None:
    assert "not valid yet" in refused(hs256(nbf=int(time.time()) + HOUR), HS)


def test_small_clock_skew_is_tolerated() -> None:
    assert verify(hs256(nbf=int(time.time()) + 5), HS).subject == "alice"


def test_forged_signature() -> None:
    assert "signature" in refused(hs256("another-secret-of-sufficient-length!!"), HS)


def test_tampered_payload() -> None:
    header, _, signature = hs256().split(".")
    payload = base64.urlsafe_b64encode(json.dumps(claims(roles=["admin"])).encode()).rstrip(b"=").decode()
    assert "signature" in refused(f"{header}.{payload}.{signature}", HS)


def test_alg_none() -> None:
    unsigned = jwt.encode(claims(roles=["admin"]), None, algorithm="none")
    assert "alg: none" in refused(unsigned, HS)


def test_other_hmac_algorithm() -> None:
    token = jwt.encode(claims(), SECRET * 2, algorithm="HS512")
    assert "HS512" in refused(token, HS) and "accepts only HS256" in refused(token, HS)


def test_rs256_with_a_public_key(rsa_key: rsa.RSAPrivateKey) -> None:
    keys = TokenKeys(public_key=load_public_key(public_pem(rsa_key)))
    assert verify(rs256(rsa_key, roles=["admin"]), keys).is_admin


def test_rs256_signed_by_another_key(rsa_key: rsa.RSAPrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = TokenKeys(public_key=load_public_key(public_pem(rsa_key)))
    assert "signature" in refused(rs256(other), keys)


def test_hs256_when_only_rs256_is_configured(rsa_key: rsa.RSAPrivateKey) -> None:
    keys = TokenKeys(public_key=load_public_key(public_pem(rsa_key)))
    assert "accepts only RS256" in refused(hs256(), keys)


def test_rs256_when_only_hs256_is_configured(rsa_key: rsa.RSAPrivateKey) -> None:
    assert "accepts only HS256" in refused(rs256(rsa_key), HS)


def test_algorithm_confusion_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    # The classic attack: HS256 "signed" with the server's RSA public key as the HMAC secret.
    pem = public_pem(rsa_key)
    forged = _hmac_token(json.dumps(claims(roles=["admin"])).encode(), pem.encode())
    assert "accepts only RS256" in refused(forged, TokenKeys(public_key=load_public_key(pem)))
    both = TokenKeys(secret=SECRET, public_key=load_public_key(pem))
    assert "signature" in refused(forged, both)


def test_both_keys_accept_both_algorithms(rsa_key: rsa.RSAPrivateKey) -> None:
    keys = TokenKeys(secret=SECRET, public_key=load_public_key(public_pem(rsa_key)))
    assert verify(hs256(sub="h"), keys).subject == "h"
    assert verify(rs256(rsa_key, sub="r"), keys).subject == "r"


ISSUED = TokenKeys(secret=SECRET, issuer="https://id.example.com", audience="bookworm")


def test_issuer_and_audience_when_configured() -> None:
    token = hs256(iss="https://id.example.com", aud=["account", "bookworm"])
    assert verify(token, ISSUED).subject == "alice"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"iss": "https://evil.example.com", "aud": "bookworm"}, "not issued by"),
        ({"aud": "bookworm"}, "no `iss` claim"),
        ({"iss": "https://id.example.com", "aud": "account"}, "audience"),
        ({"iss": "https://id.example.com"}, "no `aud` claim"),
    ],
)
def test_wrong_issuer_or_audience(overrides: dict[str, Any], reason: str) -> None:
    assert reason in refused(hs256(**overrides), ISSUED)


def test_issuer_and_audience_ignored_when_not_configured() -> None:
    assert verify(hs256(iss="anyone", aud="anything"), HS).subject == "alice"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"sub": None}, "no `sub` claim"),
        ({"exp": None}, "no `exp` claim"),
        ({"sub": ""}, "`sub` claim must be a non-empty string"),
        ({"sub": 42}, "`sub` claim must be a non-empty string"),
        ({"email": ["a@b"]}, "must be strings"),
    ],
)
def test_missing_or_malformed_claims(overrides: dict[str, Any], reason: str) -> None:
    assert reason in refused(hs256(**overrides), HS)


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": str(int(time.time()) + HOUR)},
        {"exp": "soon"},
        {"exp": True},
        {"exp": [int(time.time()) + HOUR]},
        {"iat": str(int(time.time()))},
        {"nbf": str(int(time.time()))},
    ],
)
def test_time_claims_must_be_numbers(overrides: dict[str, Any]) -> None:
    claim = next(iter(overrides))
    reason = refused(hs256(**overrides), HS)
    # PyJWT reads true as 1, an expiry in 1970.
    assert f"`{claim}` claim must be a number" in reason or (overrides[claim] is True and "expired" in reason)


def test_a_float_expiry_is_a_number() -> None:
    assert verify(hs256(exp=time.time() + HOUR), HS).subject == "alice"


def test_a_token_living_longer_than_the_maximum_is_refused() -> None:
    now = int(time.time())
    keys = TokenKeys(secret=SECRET, max_lifetime=HOUR)

    assert verify(hs256(iat=now, exp=now + HOUR), keys).subject == "alice"
    reason = refused(hs256(iat=now, exp=now + HOUR + 1), keys)
    assert f"at most {HOUR} s" in reason and "shorter-lived" in reason
    # A token issued long ago with a long life is refused even when little of it is left.
    assert "at most" in refused(hs256(iat=now - 10 * HOUR, exp=now + 60), keys)


def test_without_iat_the_lifetime_left_counts() -> None:
    now = int(time.time())
    keys = TokenKeys(secret=SECRET, max_lifetime=HOUR)

    assert verify(hs256(iat=None, exp=now + HOUR), keys).subject == "alice"
    assert "at most" in refused(hs256(iat=None, exp=now + 2 * HOUR), keys)


def test_the_default_maximum_lifetime_admits_the_default_ttl() -> None:
    assert verify(issue(SECRET, subject="dev"), HS).subject == "dev"
    assert "at most" in refused(issue(SECRET, subject="dev", ttl=86_401), HS)


def test_the_maximum_lifetime_comes_from_settings(tmp_path: Path) -> None:
    keys = resolve_keys(settings(tmp_path, jwt_secret=SECRET, max_token_lifetime=600.0))
    assert keys.max_lifetime == 600.0
    assert "at most 600 s" in refused(issue(SECRET, subject="dev", ttl=601), keys)


def test_the_principal_carries_the_expiry() -> None:
    token = issue(SECRET, subject="dev", ttl=60)
    assert verify(token, HS).expires_at == pytest.approx(time.time() + 60, abs=2)


@pytest.mark.parametrize("garbage", ["", "garbage", "a.b.c", "Bearer x.y.z"])
def test_garbage(garbage: str) -> None:
    assert "malformed" in refused(garbage, HS)


def test_signed_payload_that_is_not_json() -> None:
    assert "malformed" in refused(_hmac_token(b"not json", SECRET.encode()), HS)


def test_short_secrets_work_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", InsecureKeyLengthWarning)
        token = issue("short", subject="bob")
        assert verify(token, TokenKeys(secret="short")).subject == "bob"


def test_data_dir_secret_is_created_once_and_private(tmp_path: Path) -> None:
    first = data_dir_secret(tmp_path / "data")

    assert data_dir_secret(tmp_path / "data") == first
    mode = stat.S_IMODE((tmp_path / "data" / SECRET_FILE).stat().st_mode)
    assert mode == 0o600
    assert len(first) >= 43
    assert list((tmp_path / "data").iterdir()) == [tmp_path / "data" / SECRET_FILE]


def test_empty_secret_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE).write_text("\n")
    with pytest.raises(KeyConfigError, match="empty"):
        data_dir_secret(tmp_path)


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(data_dir=tmp_path, **values)


def test_configured_secret_makes_no_file(tmp_path: Path) -> None:
    keys = resolve_keys(settings(tmp_path, jwt_secret=SECRET))
    assert keys.algorithms == ("HS256",) and not (tmp_path / SECRET_FILE).exists()


def test_no_keys_configured_uses_the_data_dir_secret(tmp_path: Path) -> None:
    keys = resolve_keys(settings(tmp_path))
    assert keys.secret == (tmp_path / SECRET_FILE).read_text().strip()
    assert signing_secret(settings(tmp_path)) == keys.secret


def test_public_key_alone_accepts_only_rs256(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    pem_file = tmp_path / "idp.pem"
    pem_file.write_text(public_pem(rsa_key))

    keys = resolve_keys(settings(tmp_path, jwt_public_key=str(pem_file), jwt_issuer="https://id"))

    assert keys.algorithms == ("RS256",) and keys.issuer == "https://id"
    assert not (tmp_path / SECRET_FILE).exists()
    with pytest.raises(KeyConfigError, match="no private key"):
        signing_secret(settings(tmp_path, jwt_public_key=str(pem_file)))


@pytest.mark.parametrize(
    "value", ["/no/such/key.pem", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"]
)
def test_unusable_public_key_is_a_clear_error(value: str) -> None:
    with pytest.raises(KeyConfigError, match="BOOKWORM_JWT_PUBLIC_KEY"):
        load_public_key(value)


def test_non_rsa_public_key_is_refused() -> None:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(KeyConfigError, match="RSA"):
        load_public_key(pem)


def _hmac_token(payload: bytes, key: bytes) -> str:
    """Sign HS256 by hand: PyJWT itself refuses a PEM as an HMAC secret."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()
    signing_input = f"{part(header)}.{part(payload)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(signature)}"
