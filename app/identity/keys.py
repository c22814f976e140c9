"""The keys bearer tokens are checked with: an HS256 secret, an RS256 public key, or both."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from app.settings import Settings

logger = logging.getLogger("bookworm.identity")

HS256 = "HS256"
RS256 = "RS256"
SECRET_FILE = "jwt-secret"
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash


class KeyConfigError(Exception):
    """The configured identity keys cannot be used; the message says which setting to fix."""


@dataclass(frozen=True, kw_only=True)
class TokenKeys:
    """What a token must be signed with, and the issuer and audience it must name (when set)."""

    secret: str | None = None
    public_key: RSAPublicKey | None = None
    issuer: str | None = None
    audience: str | None = None
    # The longest lifetime (exp - iat, else exp - now) a token may have: a stolen one is useful that long.
    max_lifetime: float = Settings.max_token_lifetime

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms accepted: HS256 only with a secret, RS256 only with a public key."""
        return tuple(alg for alg, key in ((HS256, self.secret), (RS256, self.public_key)) if key is not None)

    def key_for(self, algorithm: str) -> str | RSAPublicKey | None:
        """Return the key that checks `algorithm`; None when that algorithm is not accepted."""
        if algorithm == HS256:
            return self.secret
        if algorithm == RS256:
            return self.public_key
        return None


def resolve_keys(settings: Settings) -> TokenKeys:
    """Build the verifying keys from settings; with neither key set, use the data-dir secret."""
    public_key = load_public_key(settings.jwt_public_key) if settings.jwt_public_key else None
    secret = settings.jwt_secret
    if secret is None and public_key is None:
        secret = data_dir_secret(settings.data_dir)
    if secret is not None and len(secret.encode()) < MIN_SECRET_BYTES:
        logger.warning(
            "BOOKWORM_JWT_SECRET is shorter than %d bytes: tokens signed with it are easy to forge",
            MIN_SECRET_BYTES,
        )
    return TokenKeys(
        secret=secret,
        public_key=public_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        max_lifetime=settings.max_token_lifetime,
    )


def signing_secret(settings: Settings) -> str:
    """Return the HS256 secret tokens are issued with: the configured one, else the data-dir one."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret
    if settings.jwt_public_key is not None:
        raise KeyConfigError(
            "only BOOKWORM_JWT_PUBLIC_KEY is set, so tokens come from your identity provider: "
            "Bookworm holds no private key to sign one (set BOOKWORM_JWT_SECRET to issue HS256 tokens)"
        )
    return data_dir_secret(settings.data_dir)


def data_dir_secret(data_dir: Path) -> str:
    """Return the random secret kept in `data_dir`, creating it (mode 0600) on first use."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        _create_secret(path)
    try:
        secret = path.read_text().strip()
    except OSError as exc:
        raise KeyConfigError(f"cannot read the token secret {path}: {exc.strerror}") from None
    if not secret:
        raise KeyConfigError(f"the token secret {path} is empty: delete it and a new one is made")
    return secret


def _create_secret(path: Path) -> None:
    """Write a new secret to `path` atomically; if another process won the race, keep theirs."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
        try:
            # link() never replaces an existing file, so concurrent first starts agree on one secret.
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    except OSError as exc:
        raise KeyConfigError(f"cannot create the token secret {path}: {exc.strerror}") from None


def load_public_key(value: str) -> RSAPublicKey:
    """Load an RS256 public key from a PEM string or from the path of a PEM file."""
    text = value.strip()
    if not text.startswith("-----BEGIN"):
        try:
            text = Path(text).expanduser().read_text()
        except OSError as exc:
            raise KeyConfigError(
                f"BOOKWORM_JWT_PUBLIC_KEY is neither a PEM nor a readable PEM file ({text}: {exc.strerror})"
            ) from None
    try:
        key = load_pem_public_key(text.encode())
    except ValueError:
        raise KeyConfigError("BOOKWORM_JWT_PUBLIC_KEY is not a PEM public key") from None
    if not isinstance(key, RSAPublicKey):
        raise KeyConfigError("BOOKWORM_JWT_PUBLIC_KEY must be an RSA public key (for RS256)")
    return key
