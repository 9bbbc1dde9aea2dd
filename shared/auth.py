"""Staff bearer tokens and integrator key hashing.

Staff tokens are JWTs signed with Ed25519 (EdDSA): only the issuer (mediation, where staff
live, and the `fengqiao token` command) holds the private key; every service verifies with the
public key, so no service can mint a token. A token lives at most an hour and carries `iss`,
`jti`, the audiences of the services it is good for, and the staff member's token version,
which each service checks against what it last heard of the staff member (shared.staff_status).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.events import utcnow

Role = Literal["mediator", "coordinator", "viewer", "admin"]
ROLES: tuple[str, ...] = ("mediator", "coordinator", "viewer", "admin")


@dataclass(frozen=True)
class StaffPrincipal:
    """Who is calling: a member of staff with a role and a scope."""

    subject: str
    role: str
    channel: str | None = None
    tier: str | None = None
    organisation: str | None = None
    grid_codes: tuple[str, ...] = field(default_factory=tuple)
    version: int = 0  # the staff member's token version when the token was issued

    @property
    def sees_personal_data(self) -> bool:
        """Mediators and coordinators work with the parties; viewers see masks only."""
        return self.role in ("mediator", "coordinator", "admin")


class AuthError(Exception):
    """The token is missing, expired, for another audience or badly signed."""


ISSUER = "fengqiao-mediation"
MAX_TOKEN_TTL = timedelta(hours=1)
LEEWAY_S = 0  # expiry is exact: the services run on synchronised clocks
# Every service's audience: a staff token names the services it is good for, each checks its own.
AUDIENCES: tuple[str, ...] = (
    "fengqiao-intake",
    "fengqiao-triage",
    "fengqiao-mediation",
    "fengqiao-followup",
    "fengqiao-console",  # the web console checks the token people sign in with
)

# Dev mode only: a fixed Ed25519 key pair so tests and `make run` can sign tokens. Outside dev
# mode the services refuse these keys (shared.settings).
_DEV_SEED = hashlib.sha256(b"fengqiao/dev-only/ed25519").digest()


def _pem_private(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _pem_public(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


DEV_JWT_PRIVATE_KEY = _pem_private(Ed25519PrivateKey.from_private_bytes(_DEV_SEED))
DEV_JWT_PUBLIC_KEY = _pem_public(Ed25519PrivateKey.from_private_bytes(_DEV_SEED).public_key())


def new_signing_keys() -> tuple[str, str]:
    """A fresh Ed25519 key pair as PEM (private, public): `fengqiao keys`."""
    key = Ed25519PrivateKey.generate()
    return _pem_private(key), _pem_public(key.public_key())


def _pem(value: str) -> bytes:
    """PEM from settings: real newlines, or `\\n` escapes as environment variables carry them."""
    return value.replace("\\n", "\n").encode()


def issue_token(
    private_key: str,
    audience: str | Sequence[str],
    principal: StaffPrincipal,
    ttl: timedelta = MAX_TOKEN_TTL,
    *,
    issuer: str = ISSUER,
    now: datetime | None = None,
) -> str:
    """Sign a short-lived bearer token for a member of staff (EdDSA, Ed25519)."""
    now = now or utcnow()
    claims: dict[str, Any] = {
        "sub": principal.subject,
        "role": principal.role,
        "aud": audience if isinstance(audience, str) else list(audience),
        "iss": issuer,
        "jti": secrets.token_hex(16),
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "ver": principal.version,
        "channel": principal.channel,
        "tier": principal.tier,
        "org": principal.organisation,
        "grids": list(principal.grid_codes),
    }
    key = serialization.load_pem_private_key(_pem(private_key), password=None)
    return jwt.encode(claims, key, algorithm="EdDSA")  # type: ignore[arg-type]


def verify_token(
    public_key: str,
    audience: str,
    token: str,
    *,
    issuer: str = ISSUER,
    max_ttl: timedelta = MAX_TOKEN_TTL,
) -> StaffPrincipal:
    """Check signature, issuer, audience, expiry and lifetime; return the principal."""
    try:
        key = serialization.load_pem_public_key(_pem(public_key))
        c = jwt.decode(
            token,
            key,  # type: ignore[arg-type]
            algorithms=["EdDSA"],
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iat", "aud", "iss", "sub", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidAudienceError:
        raise AuthError("token is for another audience") from None
    except jwt.InvalidIssuerError:
        raise AuthError("token from another issuer") from None
    except (jwt.PyJWTError, ValueError, TypeError):
        raise AuthError("invalid token") from None
    if not isinstance(c["exp"], int) or not isinstance(c["iat"], int):
        raise AuthError("invalid token")
    if c["exp"] - c["iat"] > max_ttl.total_seconds():
        raise AuthError("token lives longer than allowed")
    if c.get("role") not in ROLES:
        raise AuthError("unknown role")
    version = c.get("ver", 0)
    return StaffPrincipal(
        subject=c["sub"],
        role=c["role"],
        channel=c.get("channel"),
        tier=c.get("tier"),
        organisation=c.get("org"),
        grid_codes=tuple(c.get("grids") or ()),
        version=version if isinstance(version, int) else -1,
    )


def new_api_key() -> str:
    """A fresh integrator API key."""
    return "fq_" + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """API keys are stored hashed (SHA-256: they are long random strings)."""
    return hashlib.sha256(key.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a, b)
