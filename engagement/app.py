"""The application factory: nothing happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from . import constants as C
from .api.auth import API_KEYS, BASIC_USERS, KEY_HOLDERS
from .api.chat_session import CHAT_SESSIONS
from .api.errors import error_middleware
from .api.linking import LINKS
from .api.openapi import build_openapi
from .api.origins import OriginPolicy
from .api.routes import ROUTES, setup_routes
from .api.site import OPENAPI
from .api.state import (
    AUDIT,
    AVAILABILITY,
    BACKGROUND,
    CLIENT,
    GWE_HISTORY,
    HISTORY,
    HUB,
    INGESTOR,
    INVITES,
    LAUNCHERS,
    LIBRARY,
    LIFECYCLE,
    NOTIFIER,
    ORIGINS,
    OUTBOX,
    PACER,
    REDIS,
    REGISTRY,
    SETTINGS,
    TRACKER,
)
from .api.throttling import GUARD, Guard
from .api.visitors import RIGHTS
from .attempts import Attempt
from .audit import AuditLog
from .availability import AvailabilityBoard
from .cluster.attempts import SharedAttemptStore
from .cluster.availability import SharedBoard
from .cluster.claims import RedisClaims
from .cluster.dues import SharedDues
from .cluster.metrics import ClusterCollector
from .cluster.push import RedisHub
from .cluster.redis import RedisLink, WriteBehind, check_settings
from .cluster.visits import SharedVisits
from .console import setup_console
from .experiments.goals import GoalWindows
from .invite import Invites
from .launchers.gms_callback import GMSCallback
from .launchers.registry import Deps, Launchers
from .lifecycle.external import DecisionWebhook
from .lifecycle.owner import Lifecycle, Timeouts
from .lifecycle.timers import run_timers
from .metrics import METRICS, latency_middleware, setup_metrics
from .monitoring.ingest import Ingestor, now_ms
from .monitoring.tracker import ServedTracker
from .notifications.hub import LocalHub, PushHub
from .notifications.journal import MessageJournal, recent_messages
from .notifications.service import Notifier
from .pacing.counters import LocalCounters, PacingCounters
from .pacing.orphans import Orphans
from .pacing.pacer import PACED, Pacer
from .pacing.redis_counters import RedisCounters
from .privacy.chat_sessions import ChatSessions
from .privacy.cluster import RedisTokens, SharedErasure
from .privacy.fields import FieldFilter
from .privacy.links import LinkTokens, link_key
from .privacy.rights import VisitorRights
from .roles import Principal
from .scheduler import (
    CLOSE_IDLE,
    PACE_LINES,
    jobs,
    shared_pacing,
    shared_sweep,
    start_scheduler,
)
from .settings import Settings
from .strategy.conditions import AvailabilityView
from .strategy.engine import Engine, StrategySet
from .strategy.library import StrategyLibrary
from .throttle import RedisFailureLock, RedisRateLimiter
from .visits.gwe_reads import GweHistory
from .visits.identity import IdentityBook
from .visits.model import VisitCaps
from .visits.registry import VisitRegistry
from .visits.restore import attach_attempts, current_page_entries, restore_visits
from .visits.store import History
from .webhooks import Background

log = logging.getLogger(__name__)
SHARED = web.AppKey("shared_visits", SharedVisits)  # only when redis_url is set
DUES = web.AppKey("shared_dues", SharedDues)
BOARD = web.AppKey("shared_board", SharedBoard)  # the availability feed, across nodes
WRITES = web.AppKey("redis_writes", WriteBehind)
DEMO_CHAT_PAGE = "/demo/chat.html"  # a GMS Chat API v1 client for the demo GMS


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def create_app(settings: Settings | None = None) -> web.Application:
    """Build the engine; resources open when the app starts and close when it stops."""
    settings = settings or Settings()
    app = web.Application(
        middlewares=[latency_middleware, error_middleware], client_max_size=settings.max_body_bytes
    )
    app[SETTINGS] = settings
    origins = list(settings.allowed_origins)
    if settings.public_url:
        origins.append(_origin_of(settings.public_url))
    app[ORIGINS] = OriginPolicy(origins)
    keys = settings.resolved_keys()
    app[API_KEYS] = [k.key.encode() for k in keys]
    app[KEY_HOLDERS] = [(k.key.encode(), Principal(k.name, k.role)) for k in keys]
    app[BASIC_USERS] = [(u.encode(), p.encode()) for u, p in settings.basic_auth_users.items()]
    check_settings(settings)  # Redis state over a history each node keeps alone: refused
    if settings.redis_url:
        link = app[REDIS] = RedisLink(settings.redis_url)
        app[WRITES] = WriteBehind()
        app[GUARD] = Guard(
            settings,
            RedisRateLimiter(link),
            RedisFailureLock(
                link,
                settings.auth_free_failures,
                settings.auth_lockout_base_s,
                settings.auth_lockout_max_s,
                C.AUTH_FAILURES_FORGOTTEN_S,
            ),
        )
        app.cleanup_ctx.append(_redis)
    else:
        app[GUARD] = Guard(settings)
    tracker = app[TRACKER] = ServedTracker(_tracker_config(settings, StrategySet()))
    app[OPENAPI] = build_openapi(ROUTES)
    history = History(settings.records_at, settings.history_flush_interval_s)
    registry = VisitRegistry(
        history,
        settings.visit_timeout_s,
        settings.max_live_visits,
        settings.evict_idle_after_s,
        VisitCaps(settings.max_pages_per_visit, settings.max_events_per_visit),
    )
    app[HISTORY] = history
    app[REGISTRY] = registry
    identities = IdentityBook(registry)  # SignIn/UserInfo/SignOut -> durable identities
    history.sources.append(identities)
    ingestor = app[INGESTOR] = Ingestor(registry, identities)
    if settings.user_info_fields is not None:
        ingestor.fields = FieldFilter(settings.user_info_fields)
    app[GWE_HISTORY] = GweHistory(history)
    availability = app[AVAILABILITY] = AvailabilityBoard(
        settings.availability_stale_after_s, settings.availability_when_stale
    )
    pacing = settings.pacing
    counters: PacingCounters = LocalCounters()
    if REDIS in app:  # several nodes pace each group together
        counters = RedisCounters(app[REDIS], app[WRITES], now_ms)
    pacer = app[PACER] = Pacer(pacing.config(), availability, counters)
    gate: AvailabilityView = PACED if pacing.enabled else availability
    engine = Engine(StrategySet(), gate, strict=settings.strict_mode)
    goals = GoalWindows(history)  # experiments: conversions after an attempt
    hub: PushHub
    if REDIS in app:  # push across nodes: the replay buffers live in Redis
        hub = RedisHub(
            app[REDIS], settings.push_buffer_messages, settings.push_buffer_ttl_s,
            settings.max_streams_per_visit,
        )  # fmt: skip
        app.cleanup_ctx.append(_redis_push)  # after _redis: stops before the link closes
    else:
        hub = LocalHub(
            settings.push_buffer_ttl_s, settings.max_streams_per_visit,
            settings.push_buffer_messages,
        )  # fmt: skip
        journal = MessageJournal(settings.push_buffer_ttl_s)  # push buffers outlive a restart
        history.sources.append(journal)
        hub.recorders.append(journal.record)
    app[HUB] = hub
    history.sources.append(audit := AuditLog())  # who changed what, written with the history
    app[AUDIT] = audit
    app[NOTIFIER] = Notifier(hub, now_ms)
    app[INVITES] = Invites(settings.invites_dir)
    background = app[BACKGROUND] = Background()
    timeouts = Timeouts(
        detected_s=settings.engagement_expiration_s,
        offered_s=settings.engagement_expiration_s,
        accepted_s=settings.accepted_expiration_s,
        launched_s=settings.chat_max_duration_s,
    )
    lifecycle = app[LIFECYCLE] = Lifecycle(
        registry, engine, history, hub, now_ms, background.spawn, timeouts, goals
    )
    session = lambda: app[CLIENT]  # noqa: E731 - opened when the app starts
    launchers = app[LAUNCHERS] = Launchers(
        Deps(settings, session, lifecycle, lifecycle.by_id.get, registry.get)
    )
    lifecycle.launchers = launchers.by_media
    lifecycle.user_data = settings.user_data
    if pacing.enabled:  # strategies naming an agent group wait in its line for room
        lifecycle.pacer, lifecycle.paced_wait_s = pacer, pacing.queue_wait_s
    callbacks = launchers.named("gms_callback", GMSCallback)
    assert callbacks is not None  # always registered
    app[OUTBOX] = callbacks.outbox
    if settings.decision_webhook_url:
        lifecycle.announcer = DecisionWebhook(
            settings.decision_webhook_url, settings.webhook_secret, session, now_ms
        )
    if REDIS in app:  # one of several nodes: visits, claims and dues shared through Redis
        link = app[REDIS]
        shared = app[SHARED] = SharedVisits(link, registry, ingestor, settings.visit_timeout_s)
        ingestor.shared = lifecycle.shared = shared
        shared.adopt, shared.rearm = lifecycle.adopt, lifecycle.rearm
        callbacks.catch_up = shared.visit  # a callback another node took, sent from here
        writes = app[WRITES]
        claims = lifecycle.claims = RedisClaims(link, now_ms, writes)
        store = lifecycle.store = SharedAttemptStore(history, link, writes.spawn)
        dues = app[DUES] = SharedDues(link, shared, lifecycle)
        app[BOARD] = SharedBoard(link, writes, availability)  # a report to one node paces all
        cluster_metrics = ClusterCollector(link, ingestor, shared, claims, dues, store)
    _visitor_privacy(app, settings)
    library = app[LIBRARY] = StrategyLibrary(settings.strategies_dir, settings.invites_dir)

    def use_strategies(current: StrategySet) -> None:
        engine.strategies = current
        ingestor.categorize = current.stamp
        tracker.rebuild(_tracker_config(settings, current))

    library.listeners.append(use_strategies)
    setup_metrics(app)
    if REDIS in app:
        app[REDIS].register(app[METRICS])
        app[METRICS].register(cluster_metrics)
        if isinstance(hub, RedisHub):
            app[METRICS].register(hub)  # cross-node publications
    setup_routes(app, demo=settings.demo)
    setup_console(app)
    app.cleanup_ctx.append(_engine)
    app.on_shutdown.append(_close_streams)
    return app


def _visitor_privacy(app: web.Application, settings: Settings) -> None:
    """A visitor's rights (export, erasure), link tokens and chat sessions (docs/privacy.md)."""
    history = app[HISTORY]
    keys: list[bytes] = app[API_KEYS]
    links = app[LINKS] = LinkTokens(link_key(keys), settings.link_token_ttl_s)
    history.sources.append(chat_sessions := ChatSessions(history))
    app[CHAT_SESSIONS] = chat_sessions
    rights = app[RIGHTS] = VisitorRights(
        history, app[REGISTRY], app[LIFECYCLE], app[HUB], app[INGESTOR], app[GUARD].limiter,
        links, settings.visit_timeout_s,
    )  # fmt: skip
    if REDIS in app:  # several nodes: the visitor's Redis keys, and the word to every node
        rights.shared = SharedErasure(app[REDIS], settings.visit_timeout_s, app[WRITES].drain)
        links.shared = RedisTokens(app[REDIS])  # a link issued on one node, redeemed on any
        if SHARED in app:
            rights.forget_shared = app[SHARED].forget
        app.cleanup_ctx.append(_erasure_listener)


async def _erasure_listener(app: web.Application) -> AsyncIterator[None]:
    """Several nodes: what another node erased leaves this node's memory too."""
    rights = app[RIGHTS]
    assert rights.shared is not None
    listening = rights.shared.listen(rights.told)
    task = asyncio.create_task(listening, name="erasure-listener")
    yield
    task.cancel()
    # Bounded: a stop never waits on Redis (SIGTERM must end the process in bounded time).
    done, _ = await asyncio.wait({task}, timeout=C.SHUTDOWN_LISTENER_WAIT_S)
    if not done:
        log.warning("the erasure listener did not stop within %s s", C.SHUTDOWN_LISTENER_WAIT_S)
    elif not task.cancelled() and task.exception() is not None:
        log.error("the erasure listener had failed", exc_info=task.exception())


def _tracker_config(settings: Settings, strategies: StrategySet) -> dict[str, object]:
    return {
        "visitTimeoutS": settings.visit_timeout_s,
        "cookieDomain": settings.cookie_domain,
        # The engine's constants join these in monitoring.tracker.constants().
        "declaredEvents": [e.tracker_config() for e in strategies.declared_events],
        "push": True,
        # Where gpe.appendContent may load from: the engine (always) and these origins.
        "contentOrigins": settings.content_sources(),
        # Trusted mode (opt-in): HTML from these runs its scripts; only content_origins qualify.
        "trustedOrigins": settings.content_origins if settings.trusted_content else None,
        # GMS chats need a chat page; the demo has one for its demo GMS.
        "chatUrl": settings.chat_url
        or (DEMO_CHAT_PAGE if settings.demo and settings.gms_chat else None),
        "gmsChat": settings.gms_chat,
        "chatFinalize": settings.chat_finalize_message,
        # Privacy (docs/privacy.md): nothing stored nor sent before consent; the engine's own
        # cookie for the globalVisitID; the domains a visit follows by link token.
        "consentMode": settings.consent_mode,
        "firstPartyCookie": settings.first_party_cookie,
        "linkedDomains": settings.linked_domains,
    }


async def _redis(app: web.Application) -> AsyncIterator[None]:
    """Redis must answer at start (a node that cannot reach it would serve a partial state);
    later outages are retried per command and reported by /ready."""
    link = app[REDIS]
    try:
        await link.connect()
    except Exception as exc:
        await link.close()
        raise RedisUnreachable(f"Redis at {link.url} does not answer: {exc}") from exc
    log.info("live state in Redis at %s", link.url)
    try:
        yield
    finally:
        if WRITES in app:  # what the engine shared last reaches Redis before the link closes
            with contextlib.suppress(Exception):
                await app[DUES].publish()  # dues scheduled since the last timer tick
            await app[WRITES].drain()
        await link.close()


class RedisUnreachable(RuntimeError):
    """redis_url is set but Redis does not answer at start."""


async def _engine(app: web.Application) -> AsyncIterator[None]:
    """Open the engine's resources; whatever was opened is closed again, in reverse order,
    when the app stops or when opening a later one fails (a failed start must not leave a
    database thread that keeps the process alive)."""
    settings, history, library = app[SETTINGS], app[HISTORY], app[LIBRARY]
    lifecycle = app[LIFECYCLE]
    async with contextlib.AsyncExitStack() as opened:
        await history.open()
        opened.push_async_callback(history.close)
        recent = await history.attempts_since(now_ms() - C.LEDGER_DAYS * 86_400_000)
        lifecycle.load_ledger(recent)
        if not settings.strategies_dir.is_dir():
            log.warning(
                "no strategies folder at %s: no visit will be invited", settings.strategies_dir
            )
        library.scan()
        app[PACER].learn_from(recent, library.current.group_of)
        lifecycle.goals.reopen(recent, library.current.goals(), now_ms())
        await _take_back(app, recent)
        for error in library.all_errors():
            log.error("strategy file error: %s", error)
        app[CLIENT] = aiohttp.ClientSession()
        opened.push_async_callback(app[CLIENT].close)
        await app[OUTBOX].open()
        opened.push_async_callback(app[OUTBOX].close)
        opened.push_async_callback(app[BACKGROUND].close)
        job_list = jobs(
            app[REGISTRY], history, settings.retention_days, app[HUB], lifecycle,
            app[PACER].config.tick_s(),
        )  # fmt: skip
        counters = app[PACER].counters
        if SHARED in app and isinstance(counters, RedisCounters):
            # A visit idle here may be live elsewhere. Pacing first pulls the feed's reports,
            # the attempts whose answers it waits for (the page may answer through another
            # node) and the counters, as every node left them.
            visits, pacer = app[SHARED], app[PACER]
            pulls = [
                app[BOARD].pull,
                lambda: visits.refresh_visitors(pacer.following()),
                counters.pull,
                Orphans(counters, pacer, lifecycle.adopt, now_ms).pull,
            ]
            shared = {
                CLOSE_IDLE: shared_sweep(app[SHARED]),
                PACE_LINES: shared_pacing(lifecycle, pulls, app[PACER].config.tick_s()),
            }
            job_list = [shared.get(j.name, j) for j in job_list]
        scheduler = start_scheduler(job_list)
        opened.callback(scheduler.shutdown, wait=False)
        tasks = [
            asyncio.create_task(library.watch(), name="strategy-reload"),
            asyncio.create_task(
                run_timers(lifecycle, shared=app.get(DUES)), name="engagement-timers"
            ),
        ]
        opened.push_async_callback(_cancel, tasks)
        log.info("engine ready: records in %s", history.db.where)
        yield


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _take_back(app: web.Application, recent: list[Attempt]) -> None:
    """After a restart: the visits that were live, their unanswered attempts' timers, the push
    messages pages may still ask for, and page strategies asked again (dwell goes on)."""
    settings, history, lifecycle = app[SETTINGS], app[HISTORY], app[LIFECYCLE]
    now = now_ms()
    hub = app[HUB]
    if isinstance(hub, LocalHub):  # (a RedisHub's buffers are in Redis)
        hub.restore(await recent_messages(history.db, now - hub.ttl_ms), now)
    if REDIS in app:  # several nodes: live visits are in Redis, rebuilt when next seen
        return
    since = now - int(settings.visit_timeout_s * 1000)
    restored = await restore_visits(history, app[REGISTRY], since)
    lifecycle.resume(attach_attempts(restored, recent), now)
    lifecycle.decide(current_page_entries(restored))


async def _redis_push(app: web.Application) -> AsyncIterator[None]:
    """The pub/sub connection and publication writer of push across nodes."""
    hub = app[HUB]
    assert isinstance(hub, RedisHub)
    await hub.start()
    try:
        yield
    finally:
        await hub.stop()


async def _close_streams(app: web.Application) -> None:
    """Open push streams would hold the shutdown until they time out: end them first."""
    app[HUB].close_all()
