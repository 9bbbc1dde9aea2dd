"""Pure location rules: how coarse a viewer's coordinates are, and who sees them exact."""

from __future__ import annotations

from shared.auth import StaffPrincipal

COARSE_DECIMALS = 3  # 0.001° ≈ 111 m of latitude, ≈ 100 m of longitude at 26° N (Guizhou)
COARSE_PRECISION_M = 100


def coarse(value: float) -> float:
    """A coordinate rounded to about 100 m."""
    return round(value, COARSE_DECIMALS)


def sees_exact(p: StaffPrincipal, organisation_id: str | None, channel: str | None) -> bool:
    """Exact coordinates: the case's own mediators, coordinators in scope, admins (§7)."""
    if p.role in ("admin", "coordinator"):
        return True
    if p.role == "mediator":
        return (
            organisation_id is not None
            and p.organisation == organisation_id
            and (p.channel is None or p.channel == channel)
        )
    return False
