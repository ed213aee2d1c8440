"""A histogram's counts in a plain list, for the hot paths' histograms: one bisect per
observation (prometheus_client's ``Histogram`` takes a lock for its sum and for a bucket, in
several calls), written out as Prometheus writes a histogram when scraped."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence


class Buckets:
    """Observations per bucket (``le``: at most the bound; the last, over every bound) and
    their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, observations at most le)`` per bucket, ``+Inf`` last, for
        ``HistogramMetricFamily``."""
        les = [str(b) for b in self.bounds] + ["+Inf"]
        return list(zip(les, itertools.accumulate(self.counts), strict=True))
