"""What ``/metrics`` says about Redis and the nodes' coordination (read when scraped)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..monitoring.ingest import Ingestor
from .attempts import SharedAttemptStore
from .claims import RedisClaims
from .dues import SharedDues
from .redis import RedisLink
from .visits import SharedVisits


class ClusterCollector(Collector):
    def __init__(
        self,
        link: RedisLink,
        ingestor: Ingestor,
        visits: SharedVisits,
        claims: RedisClaims,
        dues: SharedDues,
        attempts: SharedAttemptStore,
    ) -> None:
        self.link, self.ingestor, self.visits = link, ingestor, visits
        self.claims, self.dues, self.attempts = claims, dues, attempts

    def collect(self) -> Iterator[Metric]:
        link = self.link
        yield CounterMetricFamily(
            "engagement_redis_round_trips",
            "Round trips to Redis (a command, a script or a pipeline each)",
            value=link.round_trips,
        )
        yield CounterMetricFamily(
            "engagement_redis_failures", "Round trips to Redis that failed", value=link.failures
        )
        events = self.ingestor.accepted_total + self.ingestor.duplicates_total
        yield GaugeMetricFamily(
            "engagement_redis_round_trips_per_event",
            "Round trips to Redis per event received, since start (all uses, not ingest alone)",
            value=link.round_trips / events if events else 0.0,
        )
        yield CounterMetricFamily(
            "engagement_cluster_log_appends",
            "Scripts run on visit logs (appends and catch-ups)",
            value=self.visits.appends,
        )
        yield CounterMetricFamily(
            "engagement_cluster_claims_refused",
            "Attempts not started: another attempt held the visit (strict mode across nodes)",
            value=self.claims.refused,
        )
        yield CounterMetricFamily(
            "engagement_cluster_dues_claimed",
            "Due times of conditions this node claimed from the shared schedule",
            value=self.dues.claimed_total,
        )
        yield CounterMetricFamily(
            "engagement_cluster_attempt_writes_refused",
            "Attempt changes refused because another node moved the attempt first",
            value=self.attempts.refused,
        )
