"""Prometheus metrics: counters the engine keeps anyway, read when scraped (nothing on the
hot path but the request-latency histogram)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterator

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .api.state import HISTORY, HUB, INGESTOR, LIBRARY, LIFECYCLE, OUTBOX, REGISTRY
from .api.throttling import GUARD
from .buckets import Buckets
from .gcpolicy import FROZEN, heap_blocks
from .notifications.hub import PushHub
from .visits.registry import VisitRegistry

METRICS = web.AppKey("metrics", CollectorRegistry)


class Latency(Collector):
    """The request-latency histogram, by route, method and status: counts in plain lists,
    written out when scraped (prometheus_client's Histogram takes a lock for its sum and for
    a bucket on every request, several calls; this is one list lookup and a bisect)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._series: dict[tuple[str, str, int], Buckets] = {}
        registry.register(self)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Buckets(LATENCY_BUCKETS_S)
        series.observe(seconds)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "engagement_http_request_duration_seconds",
            "Time to answer, by route",
            labels=["route", "method", "status"],
        )
        for (route, method, status), series in self._series.items():
            family.add_metric([route, method, str(status)], series.cumulative(), series.sum)
        yield family


LATENCY = web.AppKey("latency", Latency)
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class EngineCollector(Collector):
    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        app = self.app
        ingestor, lifecycle = app[INGESTOR], app[LIFECYCLE]
        yield _counter("engagement_events_ingested", "Events accepted", ingestor.accepted_total)
        yield _counter(
            "engagement_event_duplicates", "Events dropped as duplicates", ingestor.duplicates_total
        )
        fields = ingestor.fields
        yield _counter(
            "engagement_user_info_fields_dropped", "UserInfo/SignIn fields not in user_info_fields",
            fields.dropped_total if fields is not None else 0,
        )  # fmt: skip
        yield _counter(
            "engagement_erased_events_dropped", "Events of erased visits, dropped",
            ingestor.erased_dropped_total,
        )  # fmt: skip
        attempts = CounterMetricFamily(
            "engagement_attempts", "Engagement attempts that reached a state", labels=["state"]
        )
        for state, count in sorted(lifecycle.reached.items()):
            attempts.add_metric([state], count)
        yield attempts
        yield _counter(
            "engagement_conversions", "Goal events counted for an attempt (experiments)",
            lifecycle.goals.converted_total,
        )  # fmt: skip
        yield _gauge(
            "engagement_goal_windows", "Goal windows open (attempts whose goal may still come)",
            len(lifecycle.goals),
        )  # fmt: skip
        yield _counter(
            "engagement_launcher_retries", "Callback deliveries retried", app[OUTBOX].retries_total
        )
        registry, hub = app[REGISTRY], app[HUB]
        yield _gauge("engagement_live_visits", "Visits live now", len(registry))
        yield from _caps(registry, hub)
        yield _gauge("engagement_open_streams", "Page push streams open", hub.open_streams)
        yield _gauge(
            "engagement_history_queue", "History rows waiting to be written", app[HISTORY].pending
        )
        history = app[HISTORY]
        for name, doc, counts in (
            ("engagement_history_rows_set_aside", "Rows the store could not hold, set aside",
             history.set_aside),
            ("engagement_history_rows_unreadable", "Stored rows left out of reads",
             history.unreadable),
        ):  # fmt: skip
            family = CounterMetricFamily(name, doc, labels=["table"])
            for table, count in counts.items():
                family.add_metric([table], count)
            yield family
        yield _gauge("engagement_callback_queue", "Callbacks not yet delivered", app[OUTBOX].queued)
        guard = app[GUARD]
        throttled = CounterMetricFamily(
            "engagement_throttled", "Requests refused by a rate limit (429)", labels=["limit"]
        )
        for limit in sorted(guard.rates):
            throttled.add_metric([limit], guard.refused[limit])
        yield throttled
        yield _counter(
            "engagement_auth_failures", "Wrong API keys presented", guard.auth_failures_total
        )
        yield _counter(
            "engagement_auth_lockouts",
            "Requests refused (429) while their address was locked out for wrong keys",
            guard.auth_locked_total,
        )
        heap = app.get(FROZEN)  # `engagement serve`'s collection policy (engagement/gcpolicy.py)
        if heap is not None:
            yield _gauge("engagement_gc_heap_blocks", "Memory blocks Python holds", heap_blocks())
            yield _gauge(
                "engagement_gc_thaw_threshold_blocks", "Heap size past which the next thaw comes",
                heap.threshold,
            )  # fmt: skip
            yield _counter(
                "engagement_gc_thaws", "Full collections of the frozen objects", heap.thaws
            )
            yield _counter(
                "engagement_gc_thaw_garbage", "Unreachable objects the thaws found",
                heap.collected_total,
            )  # fmt: skip
            yield _gauge(
                "engagement_gc_last_thaw_seconds", "How long the last thaw stopped the loop",
                heap.last_pause_s,
            )  # fmt: skip
        yield _gauge("engagement_strategies", "Strategies running", len(app[LIBRARY].current))
        yield _gauge(
            "engagement_strategy_errors", "Strategy files with errors", len(app[LIBRARY].errors)
        )


def _caps(registry: VisitRegistry, hub: PushHub) -> Iterator[Metric]:
    """The memory caps (README, "Limits") and what they dropped."""
    caps = registry.caps
    yield _gauge("engagement_live_visits_max", "Cap on live visits", registry.max_visits)
    yield _counter(
        "engagement_visits_evicted",
        "Idle visits closed early to make room at the live-visit cap",
        registry.evicted_total,
    )
    yield _counter(
        "engagement_visits_refused",
        "Event batches refused (503) at the live-visit cap, no visit being idle",
        registry.refused_total,
    )
    yield _counter(
        "engagement_pages_dropped", "Pages that left memory at a visit's cap", caps.pages_dropped
    )
    yield _counter(
        "engagement_events_dropped",
        "Events that left memory at a visit's cap (the history keeps them)",
        caps.events_dropped,
    )
    yield _counter(
        "engagement_categories_dropped",
        "Categories not counted past a visit's cap",
        caps.categories_dropped,
    )
    yield _counter(
        "engagement_user_info_dropped",
        "UserInfo/SignIn fields not merged past a visit's cap (keys or bytes)",
        caps.user_info_dropped,
    )
    yield _counter(
        "engagement_streams_dropped",
        "Oldest push streams closed at a visit's cap",
        hub.streams_dropped_total,
    )


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def setup_metrics(app: web.Application) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(app))
    app[METRICS] = registry
    app[LATENCY] = Latency(registry)


@web.middleware
def latency_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """The request-latency histogram. A push stream lasts as long as the page: not a latency,
    so its handler is returned as it is, without a frame of this middleware held for the
    stream's life (memory per open stream; aiohttp awaits what a middleware returns)."""
    route = request.match_info.route.name
    if route == "stream":
        return handler(request)
    return _timed(request, handler, route or "unmatched")


async def _timed(request: web.Request, handler: Handler, route: str) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[LATENCY].observe(route, request.method, status, time.perf_counter() - started)


async def get_metrics(request: web.Request) -> web.StreamResponse:
    """Prometheus metrics (text exposition format)."""
    return web.Response(
        body=generate_latest(request.app[METRICS]), headers={"Content-Type": CONTENT_TYPE}
    )
