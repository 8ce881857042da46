"""Conversions between rho-zCDP and (epsilon, delta)-DP (used by the Gaussian mechanism and the ledger)."""

from __future__ import annotations

import math


def zcdp_to_dp(rho: float, delta: float) -> float:
    """epsilon such that rho-zCDP implies (epsilon, delta)-DP (Bun & Steinke 2016, Prop. 1.3)."""
    if math.isinf(rho):
        return math.inf
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


def dp_to_zcdp(epsilon: float, delta: float) -> float:
    """The largest rho with zcdp_to_dp(rho, delta) <= epsilon."""
    L = math.log(1.0 / delta)
    rho = (math.sqrt(L + epsilon) - math.sqrt(L)) ** 2
    while zcdp_to_dp(rho, delta) > epsilon:  # never overstate rho through float rounding
        rho = math.nextafter(rho, 0.0)
    return rho
