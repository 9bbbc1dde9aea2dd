"""Pure location rules: how coarse the coordinates are that everyone may see.

Who sees them exact is shared.scope's rule for personal data in clear (DOMAIN.md §7).
"""

from __future__ import annotations

COARSE_DECIMALS = 3  # 0.001° ≈ 111 m of latitude, ≈ 100 m of longitude at 26° N (Guizhou)
COARSE_PRECISION_M = 100


def coarse(value: float) -> float:
    """A coordinate rounded to about 100 m."""
    return round(value, COARSE_DECIMALS)
