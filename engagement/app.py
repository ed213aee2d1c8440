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
from .api.auth import API_KEYS, BASIC_USERS
from .api.errors import error_middleware
from .api.openapi import build_openapi
from .api.origins import OriginPolicy
from .api.routes import ROUTES, setup_routes
from .api.site import OPENAPI
from .api.state import (
    AVAILABILITY,
    BACKGROUND,
    CLIENT,
    ENGAGEMENTS,
    GWE_HISTORY,
    HISTORY,
    HUB,
    INGESTOR,
    INVITES,
    LIBRARY,
    NOTIFIER,
    ORIGINS,
    OUTBOX,
    PACER,
    REGISTRY,
    SETTINGS,
    TRACKER,
)
from .api.throttling import GUARD, Guard
from .attempts import Attempt, State
from .availability import AvailabilityBoard
from .console import setup_console
from .engagements import Engagements
from .experiments.goals import GoalWindows
from .invite import Invites
from .launchers.handoff import attached_data
from .launchers.outbox import CallbackOutbox, Delivery, GMSSettings
from .metrics import latency_middleware, setup_metrics
from .monitoring.ingest import Ingestor, now_ms
from .monitoring.tracker import ServedTracker
from .notifications.hub import LocalHub
from .notifications.journal import MessageJournal, recent_messages
from .notifications.service import Notifier
from .pacing.counters import LocalCounters
from .pacing.pacer import PACED, Pacer
from .scheduler import jobs, start_scheduler
from .settings import Settings
from .strategy.conditions import AvailabilityView
from .strategy.engine import Engine, StrategySet
from .strategy.library import StrategyLibrary
from .visits.gwe_reads import GweHistory
from .visits.identity import IdentityBook
from .visits.model import Visit, VisitCaps
from .visits.registry import VisitRegistry
from .visits.restore import attach_attempts, current_page_entries, restore_visits
from .visits.store import SQLiteHistory
from .webhooks import Background, post_json

log = logging.getLogger("engagement.app")
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
    app[API_KEYS] = [k.encode() for k in settings.resolved_api_keys()]
    app[BASIC_USERS] = [(u.encode(), p.encode()) for u, p in settings.basic_auth_users.items()]
    app[GUARD] = Guard(settings)
    tracker = app[TRACKER] = ServedTracker(_tracker_config(settings, StrategySet()))
    app[OPENAPI] = build_openapi(ROUTES)
    history = SQLiteHistory(settings.db_path, settings.history_flush_interval_s)
    registry = VisitRegistry(
        history,
        settings.visit_timeout_s,
        settings.max_live_visits,
        settings.evict_idle_after_s,
        VisitCaps(settings.max_pages_per_visit, settings.max_events_per_visit),
    )
    app[HISTORY] = history
    app[REGISTRY] = registry
    ingestor = app[INGESTOR] = Ingestor(registry)
    identities = IdentityBook(registry)  # SignIn/UserInfo/SignOut -> durable identities
    history.sources.append(identities)
    ingestor.listeners.append(identities)
    app[GWE_HISTORY] = GweHistory(history)
    availability = app[AVAILABILITY] = AvailabilityBoard(
        settings.availability_stale_after_s, settings.availability_when_stale
    )
    pacing = settings.pacing
    pacer = app[PACER] = Pacer(pacing.config(), availability, LocalCounters())
    gate: AvailabilityView = PACED if pacing.enabled else availability
    engine = Engine(StrategySet(), gate, strict=settings.strict_mode)
    goals = GoalWindows(history)
    engagements = app[ENGAGEMENTS] = Engagements(
        registry, engine, history, settings.engagement_expiration_s, goals
    )
    # Goals first: a goal event in the batch that qualifies a visit came before its invitation.
    ingestor.listeners.append(goals)
    if pacing.enabled:
        engagements.pacer, engagements.paced_wait_s = pacer, pacing.queue_wait_s
    ingestor.listeners.append(engagements)
    hub = app[HUB] = LocalHub(max_streams_per_visit=settings.max_streams_per_visit)
    journal = MessageJournal()  # push buffers outlive a restart
    history.sources.append(journal)
    hub.recorders.append(journal.record)
    notifier = app[NOTIFIER] = Notifier(hub, engagements, settings.user_data)
    app[INVITES] = Invites(settings.invites_dir)
    app[BACKGROUND] = Background()
    gms_url = settings.resolved_gms_url()
    outbox = app[OUTBOX] = CallbackOutbox(
        settings.db_path,
        GMSSettings(gms_url or "", settings.gms_user, settings.gms_password),
        lambda: app[CLIENT],
    )
    outbox.listeners.append(lambda delivery: _callback_delivered(engagements, delivery))
    if settings.custom_webhook_url:
        engagements.accepted_listeners.append(
            lambda attempt: app[BACKGROUND].spawn(
                _launch_custom(app, attempt), f"custom-{attempt.attempt_id}"
            )
        )
    if settings.decision_webhook_url:
        engagements.announcers.append(
            lambda attempt, visit: app[BACKGROUND].spawn(
                _announce(app, attempt, visit), f"announce-{attempt.attempt_id}"
            )
        )
    del notifier
    library = app[LIBRARY] = StrategyLibrary(settings.strategies_dir)

    def use_strategies(current: StrategySet) -> None:
        engine.strategies = current
        ingestor.categorize = current.categorize
        tracker.rebuild(_tracker_config(settings, current))

    library.listeners.append(use_strategies)
    setup_metrics(app)
    setup_routes(app, demo=settings.demo)
    setup_console(app)
    app.cleanup_ctx.append(_engine)
    app.on_shutdown.append(_close_streams)
    return app


def _tracker_config(settings: Settings, strategies: StrategySet) -> dict[str, object]:
    return {
        "visitTimeoutS": settings.visit_timeout_s,
        "cookieDomain": settings.cookie_domain,
        "cookiePrefix": "_eng_",
        "flushDelayMs": 50,
        "maxBufferEvents": 500,
        "maxDataBytes": C.MAX_EVENT_DATA_BYTES,
        "declaredEvents": [e.tracker_config() for e in strategies.declared_events],
        "push": True,
        # Where gpe.appendContent may load from: the engine (always) and these origins.
        "contentOrigins": settings.content_sources(),
        # GMS chats need a chat page; the demo has one for its demo GMS.
        "chatUrl": settings.chat_url
        or (DEMO_CHAT_PAGE if settings.demo and settings.gms_chat else None),
        "gmsChat": settings.gms_chat,
        "chatFinalize": settings.chat_finalize_message,
    }


async def _engine(app: web.Application) -> AsyncIterator[None]:
    """Open the engine's resources; whatever was opened is closed again, in reverse order,
    when the app stops or when opening a later one fails (a failed start must not leave a
    database thread that keeps the process alive)."""
    settings, history, library = app[SETTINGS], app[HISTORY], app[LIBRARY]
    engagements = app[ENGAGEMENTS]
    async with contextlib.AsyncExitStack() as opened:
        await history.open()
        opened.push_async_callback(history.close)
        recent = await history.attempts_since(now_ms() - C.LEDGER_DAYS * 86_400_000)
        engagements.load_ledger(recent)
        if not settings.strategies_dir.is_dir():
            log.warning(
                "no strategies folder at %s: no visit will be invited", settings.strategies_dir
            )
        library.scan()
        engagements.goals.reopen(recent, library.current.goals(), now_ms())
        await _take_back(app, recent)
        for error in library.all_errors():
            log.error("strategy file error: %s", error)
        app[CLIENT] = aiohttp.ClientSession()
        opened.push_async_callback(app[CLIENT].close)
        await app[OUTBOX].open()
        opened.push_async_callback(app[OUTBOX].close)
        opened.push_async_callback(app[BACKGROUND].close)
        scheduler = start_scheduler(
            jobs(
                app[REGISTRY], history, settings.retention_days, app[HUB], engagements,
                app[PACER].config.tick_s(),
            )
        )  # fmt: skip
        opened.callback(scheduler.shutdown, wait=False)
        tasks = [
            asyncio.create_task(library.watch(), name="strategy-reload"),
            asyncio.create_task(engagements.run_timers(), name="engagement-timers"),
        ]
        opened.push_async_callback(_cancel, tasks)
        log.info("engine ready: history in %s", settings.db_path)
        yield


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _take_back(app: web.Application, recent: list[Attempt]) -> None:
    """After a restart: the visits that were live, their unanswered attempts' timers, the push
    messages pages may still ask for, and page strategies asked again (dwell goes on)."""
    settings, history, engagements = app[SETTINGS], app[HISTORY], app[ENGAGEMENTS]
    now = now_ms()
    since = now - int(settings.visit_timeout_s * 1000)
    restored = await restore_visits(history, app[REGISTRY], since)
    for attempt in attach_attempts(restored, recent):
        wait_s = engagements.offer_timeout_s
        if attempt.state is State.SHOWN:
            wait_s = attempt.timeout_s + C.SHOWN_GRACE_S
        engagements.expect(attempt, attempt.state, now + int(wait_s * 1000))
    hub = app[HUB]
    hub.restore(await recent_messages(history.db, now - hub.ttl_ms), now)
    engagements.on_events(current_page_entries(restored))


async def _close_streams(app: web.Application) -> None:
    """Open push streams would hold the shutdown until they time out: end them first."""
    app[HUB].close_all()


def _callback_delivered(engagements: Engagements, delivery: Delivery) -> None:
    attempt = engagements.by_id.get(delivery.attempt_id)
    if attempt is None:
        log.warning("callback %s for an attempt no longer in memory", delivery.request_id)
        return
    attempt.handoff.update({"gmsID": delivery.gms_id, "error": delivery.error})
    if delivery.ok and attempt.can_move(State.LAUNCHED):
        engagements.move(attempt, State.LAUNCHED, now_ms(), f"GMS callback {delivery.gms_id}")
    elif not delivery.ok and attempt.can_move(State.FAILED):
        engagements.move(attempt, State.FAILED, now_ms(), delivery.error or "GMS refused")
    else:
        engagements.store.record_attempt(attempt)


async def _launch_custom(app: web.Application, attempt: Attempt) -> None:
    """Third-party media: the attached data, signed, to the configured webhook."""
    settings = app[SETTINGS]
    if attempt.media != "custom" or not settings.custom_webhook_url:
        return
    payload = {
        "event": "engagement.accepted",
        "attempt": attempt.as_json(),
        "attachedData": attached_data(
            attempt, visit=app[REGISTRY].get(attempt.visit_id), fields=settings.user_data.attach
        ),
    }
    engagements = app[ENGAGEMENTS]
    for tries in range(1, 4):
        try:
            status = await post_json(
                app[CLIENT], settings.custom_webhook_url, payload, settings.webhook_secret
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, reason = 0, f"webhook unreachable: {exc}"
        else:
            reason = f"webhook answered {status}"
        if 200 <= status < 300:
            if attempt.can_move(State.LAUNCHED):
                engagements.move(attempt, State.LAUNCHED, now_ms(), "custom webhook")
            return
        if 400 <= status < 500:
            break
        await asyncio.sleep(tries)
    if attempt.can_move(State.FAILED):
        engagements.move(attempt, State.FAILED, now_ms(), reason)


async def _announce(app: web.Application, attempt: Attempt, visit: Visit) -> None:
    """Ask the outside decision-maker: it answers with engage or noengage before the expiry."""
    settings = app[SETTINGS]
    assert settings.decision_webhook_url is not None
    payload = {
        "event": "engagement.detected",
        "attempt": attempt.as_json(),
        "visit": visit.summary(now_ms()),
        "engage": "/server/data/gateway/engage",
        "noengage": "/server/data/gateway/noengage",
    }
    try:
        status = await post_json(
            app[CLIENT], settings.decision_webhook_url, payload, settings.webhook_secret
        )
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning(
            "decision webhook unreachable for attempt %s: %s",
            attempt.attempt_id,
            exc,
            extra={"attemptID": attempt.attempt_id, "visitID": attempt.visit_id},
        )
        return
    if status >= 300:
        log.warning(
            "decision webhook answered %d for attempt %s",
            status,
            attempt.attempt_id,
            extra={"attemptID": attempt.attempt_id, "visitID": attempt.visit_id},
        )
