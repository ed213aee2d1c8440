"""Confidence intervals for conversion rates and their differences (small counts included).

A conversion rate is a proportion k/n; its interval is Wilson's score interval, which stays
inside [0, 1] and keeps its coverage when k is 0 or n is small (the normal "Wald" interval
does neither). The lift of a variant over the holdout is the difference of the two rates; its
interval is Newcombe's hybrid score interval (Newcombe 1998, method 10), built from the two
Wilson intervals: recommended for differences of independent proportions, defined for every
count, and close to nominal coverage from a few dozen visitors per group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

CONFIDENCE = 0.95
Z95 = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)  # 1.959963...


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials ((0, 1) when n is 0)."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True, slots=True)
class Lift:
    """Rate of a group minus the holdout's, in proportion points, with its 95 % interval."""

    difference: float
    low: float
    high: float
    relative: float | None  # difference / holdout rate (None when the holdout never converted)

    @property
    def significant(self) -> bool:
        """Whether the interval excludes no effect (0)."""
        return self.low > 0 or self.high < 0


def lift(k1: int, n1: int, k0: int, n0: int, z: float = Z95) -> Lift | None:
    """Newcombe's hybrid score interval of p1 - p0 (group 1 against holdout 0); None when
    either group is empty."""
    if n1 <= 0 or n0 <= 0:
        return None
    p1, p0 = k1 / n1, k0 / n0
    l1, u1 = wilson(k1, n1, z)
    l0, u0 = wilson(k0, n0, z)
    d = p1 - p0
    low = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return Lift(d, low, high, d / p0 if p0 > 0 else None)
