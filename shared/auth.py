"""Staff bearer tokens (signed JWTs with expiry and audience) and integrator key hashing."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import jwt

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

    @property
    def sees_personal_data(self) -> bool:
        """Mediators and coordinators work with the parties; viewers see masks only."""
        return self.role in ("mediator", "coordinator", "admin")


class AuthError(Exception):
    """The token is missing, expired, for another audience or badly signed."""


def issue_token(
    secret: str, audience: str, principal: StaffPrincipal, ttl: timedelta = timedelta(hours=12)
) -> str:
    """Sign a bearer token for a member of staff."""
    now = utcnow()
    claims: dict[str, Any] = {
        "sub": principal.subject,
        "role": principal.role,
        "aud": audience,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "channel": principal.channel,
        "tier": principal.tier,
        "org": principal.organisation,
        "grids": list(principal.grid_codes),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(secret: str, audience: str, token: str) -> StaffPrincipal:
    """Check signature, expiry and audience; return the principal."""
    try:
        c = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=audience,
            options={"require": ["exp", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidAudienceError:
        raise AuthError("token is for another audience") from None
    except jwt.PyJWTError:
        raise AuthError("invalid token") from None
    if c.get("role") not in ROLES:
        raise AuthError("unknown role")
    return StaffPrincipal(
        subject=c["sub"],
        role=c["role"],
        channel=c.get("channel"),
        tier=c.get("tier"),
        organisation=c.get("org"),
        grid_codes=tuple(c.get("grids") or ()),
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
