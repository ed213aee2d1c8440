"""The one route table: every path, its name, and what the OpenAPI document says of it."""

from __future__ import annotations

from aiohttp import web

from ..console import desktop, experiments, report
from ..metrics import get_metrics
from ..monitoring.models import EventBatch, IngestResult
from ..roles import Role
from . import (
    audit,
    chat_session,
    gwe_history,
    handoff,
    history,
    linking,
    monitoring,
    notifications,
    pacing,
    server_events,
    site,
    strategies,
    visitors,
)
from .demo_gms import setup_demo_gms
from .origins import preflight
from .policy import add_routes
from .route import AT_CAPACITY, Policy, Route
from .state import origins_of

P = Policy
UNKNOWN_ATTEMPT = (404, "no such attempt (or visit) here")
NOTHING_HELD = (404, "the engine holds nothing about this visitor")
NOT_NOW = (409, "the attempt (or visit) is not in a state that allows this; `details` says")
R = Role  # agent < supervisor < admin; a route not saying is admin's
ROUTES: list[Route] = [
    Route("POST", "/monitoring/events", monitoring.post_events, "events", "monitoring",
          policy=P.SITE, body=EventBatch, response=IngestResult, answers=(AT_CAPACITY,)),
    Route("OPTIONS", "/monitoring/events", preflight(origins_of), "events-preflight",
          "monitoring", policy=P.SITE),
    Route("GET", "/tracker.js", monitoring.get_tracker, "tracker", "monitoring",
          content="application/javascript", policy=P.PUBLIC),
    Route("GET", "/engage.js", monitoring.get_engage, "engage-script", "monitoring",
          content="application/javascript", policy=P.PUBLIC),
    Route("GET", "/crossdomain.js", monitoring.get_crossdomain, "crossdomain-script",
          "monitoring", content="application/javascript", policy=P.PUBLIC),
    Route("GET", "/notifications/stream", notifications.stream, "stream", "notifications",
          policy=P.SITE, query=notifications.StreamQuery, headers=notifications.StreamHeaders,
          content="text/event-stream"),
    Route("GET", "/dispositions/{attemptID}", notifications.disposition, "disposition",
          "notifications", policy=P.SITE, query=notifications.DispositionQuery,
          response=notifications.AttemptStateOut, answers=(NOT_NOW,)),
    Route("GET", "/invites/{attemptID}.html", notifications.invite_html, "invite",
          "notifications", policy=P.SITE, query=notifications.InviteQuery, content="text/html"),
    Route("POST", "/callbacks", handoff.post_callback, "callbacks", "handoff", policy=P.SITE,
          body=handoff.CallbackIn, response=handoff.CallbackOut, statuses=(202,),
          answers=(UNKNOWN_ATTEMPT, NOT_NOW)),
    Route("OPTIONS", "/callbacks", preflight(origins_of), "callbacks-preflight", "handoff",
          policy=P.SITE),
    Route("POST", "/chats", handoff.post_chat, "chats", "handoff", policy=P.SITE,
          body=handoff.ChatIn, response=handoff.ChatOut,
          answers=(UNKNOWN_ATTEMPT, NOT_NOW, (503, "no agent is available: `message` says"))),
    Route("OPTIONS", "/chats", preflight(origins_of), "chats-preflight", "handoff", policy=P.SITE),
    Route("POST", "/server/data/notification/notify/{visitID}", notifications.notify, "notify",
          "gwe", policy=P.API_KEY, body=notifications.NotifyBody, role=R.AGENT),
    Route("POST", "/server/data/gateway/engage", notifications.engage, "engage", "gwe",
          policy=P.API_KEY, body=notifications.EngageBody, response=notifications.AttemptStateOut,
          answers=(UNKNOWN_ATTEMPT, NOT_NOW)),
    Route("POST", "/server/data/gateway/noengage", notifications.noengage, "noengage", "gwe",
          policy=P.API_KEY, body=notifications.NoEngageBody,
          response=notifications.AttemptStateOut, answers=(UNKNOWN_ATTEMPT, NOT_NOW)),
    Route("GET", "/server/data/visits/{visitId}", gwe_history.get_visit, "gwe-visit",
          "gwe-history", policy=P.API_KEY, query=gwe_history.VisitQuery,
          response=gwe_history.GweVisit, role=R.AGENT),
    Route("GET", "/server/data/visits/{visitId}/events", gwe_history.get_visit_events,
          "gwe-visit-events", "gwe-history", policy=P.API_KEY, query=gwe_history.EventsQuery,
          response=gwe_history.GweEvents, role=R.AGENT),
    Route("POST", "/server/data/visits/{visitId}/events", server_events.post_visit_event,
          "gwe-visit-event-create", "gwe-history", policy=P.API_KEY, audit=False,
          body=server_events.ServerEventIn,
          response=server_events.ServerEventOut,
          answers=(AT_CAPACITY, (409, "the body names another visit or visitor than the path's")),
          statuses=(201, 200)),  # 200: a duplicate eventID
    Route("GET", "/server/data/visits/{visitId}/identities", gwe_history.get_visit_identities,
          "gwe-visit-identities", "gwe-history", policy=P.API_KEY,
          query=gwe_history.IdentitiesQuery,
          response=gwe_history.GweIdentities, role=R.AGENT),
    Route("GET", "/server/data/pages/{pageId}/events", gwe_history.get_page_events,
          "gwe-page-events", "gwe-history", policy=P.API_KEY, query=gwe_history.EventsQuery,
          response=gwe_history.GweEvents, role=R.AGENT),
    Route("GET", "/server/data/identities/{identityId}", gwe_history.get_identity,
          "gwe-identity", "gwe-history", policy=P.API_KEY, response=gwe_history.GweIdentity,
          role=R.AGENT),
    Route("GET", "/server/data/identities/{identityId}/events", gwe_history.get_identity_events,
          "gwe-identity-events", "gwe-history", policy=P.API_KEY, query=gwe_history.EventsQuery,
          response=gwe_history.GweEvents, role=R.AGENT),
    Route("GET", "/server/data/identities/{identityId}/visits", gwe_history.get_identity_visits,
          "gwe-identity-visits", "gwe-history", policy=P.API_KEY,
          query=gwe_history.IdentityVisitsQuery,
          response=gwe_history.GweVisits, role=R.AGENT),
    Route("POST", "/api/v1/visits/{visitID}/desktop-link", desktop.post_desktop_link,
          "desktop-link", "desktop", policy=P.API_KEY, response=desktop.DesktopLinkOut,
          role=R.AGENT),
    Route("GET", "/desktop/visits/{visitID}", desktop.desktop_visit, "desktop-visit", "desktop",
          query=desktop.DesktopQuery, content="text/html", policy=P.PUBLIC,
          answers=((403, "the link's signature is wrong, or it has expired"),)),
    Route("GET", "/api/v1/visits/live", history.get_live_visits, "live-visits", "history",
          policy=P.API_KEY, query=history.LiveQuery, response=history.LiveVisitsOut,
          role=R.AGENT),
    Route("GET", "/api/v1/visits/{visitID}", history.get_visit, "visit", "history",
          policy=P.API_KEY, response=history.VisitOut, role=R.AGENT),
    Route("GET", "/api/v1/visitors/{globalVisitID}/visits", history.get_visitor_visits,
          "visitor-visits", "history", policy=P.API_KEY, query=history.VisitorQuery,
          response=history.VisitorVisitsOut, role=R.AGENT),
    Route("GET", "/api/v1/visitors/{globalVisitID}", visitors.get_visitor, "visitor-export",
          "privacy", policy=P.API_KEY, response=visitors.ExportOut, audit=True),
    Route("DELETE", "/api/v1/visitors/{globalVisitID}", visitors.delete_visitor, "visitor-erase",
          "privacy", policy=P.API_KEY, response=visitors.ErasureOut),
    Route("GET", "/api/v1/visitors", visitors.get_identity_data, "identity-export", "privacy",
          policy=P.API_KEY, query=visitors.IdentityQuery, response=visitors.ExportOut, audit=True,
          answers=(NOTHING_HELD,)),
    Route("DELETE", "/api/v1/visitors", visitors.delete_identity_data, "identity-erase",
          "privacy", policy=P.API_KEY, query=visitors.IdentityQuery,
          response=visitors.ErasureOut, answers=(NOTHING_HELD,)),
    Route("POST", "/visitor-id", linking.post_visitor_id, "visitor-id", "privacy", policy=P.SITE,
          body=linking.VisitorIdIn, response=linking.VisitorIdOut,
          answers=((404, "first_party_cookie is off"),)),
    Route("POST", "/visitor-id/forget", linking.forget_visitor_id, "visitor-id-forget", "privacy",
          policy=P.SITE, response=linking.ForgetOut),
    Route("POST", "/links", linking.post_link, "link-issue", "privacy", policy=P.SITE,
          body=linking.LinkIn, response=linking.LinkOut,
          answers=((404, "no linked_domains are set, or the visit is not live"),)),
    Route("POST", "/links/redeem", linking.redeem_link, "link-redeem", "privacy", policy=P.SITE,
          body=linking.RedeemIn, response=linking.RedeemOut,
          answers=((404, "no linked_domains are set"), (410, "the token has expired"))),
    Route("POST", "/chat-session", chat_session.save_chat_session, "chat-session-save",
          "privacy", policy=P.SITE, body=chat_session.ChatSessionIn,
          response=chat_session.ChatSessionOut, answers=((413, "data over the limit"),)),
    Route("POST", "/chat-session/load", chat_session.load_chat_session, "chat-session-load",
          "privacy", policy=P.SITE, body=chat_session.ChatSessionKey,
          response=chat_session.ChatSessionOut),
    *[Route("OPTIONS", path, preflight(origins_of), f"{name}-preflight", "privacy", policy=P.SITE)
      for path, name in (("/visitor-id", "visitor-id"), ("/links", "link-issue"),
                         ("/links/redeem", "link-redeem"), ("/chat-session", "chat-session-save"),
                         ("/chat-session/load", "chat-session-load"))],
    Route("GET", "/api/v1/strategies", strategies.get_strategies, "strategies", "strategies",
          policy=P.API_KEY, response=strategies.StrategiesOut, role=R.SUPERVISOR),
    Route("GET", "/api/v1/availability", strategies.get_availability, "availability",
          "strategies", policy=P.API_KEY, response=strategies.AvailabilityOut,
          role=R.SUPERVISOR),
    Route("PUT", "/api/v1/availability/{group}", strategies.put_availability,
          "availability-group", "strategies", policy=P.API_KEY, body=strategies.AvailabilityIn,
          response=strategies.AvailabilityOut,
          role=R.SUPERVISOR),
    Route("GET", "/server/data/pacing/reactiveState", pacing.reactive_state, "reactive-state",
          "gwe", policy=P.SITE_OR_API_KEY, query=pacing.ReactiveStateQuery,
          response=pacing.ReactiveStateOut, role=R.AGENT),
    Route("GET", "/api/v1/pacing", pacing.get_pacing, "pacing", "strategies", policy=P.API_KEY,
          response=pacing.PacingOut, role=R.SUPERVISOR),
    Route("GET", "/api/v1/reports/strategies", report.get_strategy_report, "report-strategies",
          "reports", policy=P.API_KEY, query=report.ReportQuery, response=report.StrategyReportOut,
          role=R.SUPERVISOR),
    Route("GET", "/api/v1/reports/experiments", experiments.get_experiment_report,
          "report-experiments", "reports", policy=P.API_KEY, query=report.ReportQuery,
          response=experiments.ExperimentReportOut, role=R.SUPERVISOR),
    Route("GET", "/api/v1/audit", audit.get_audit, "audit", "audit", policy=P.API_KEY,
          query=audit.AuditQuery, response=audit.AuditOut),
    Route("GET", "/api/openapi.json", site.get_openapi, "openapi", "meta", policy=P.PUBLIC),
    Route("GET", "/health", site.get_health, "health", "meta", policy=P.PUBLIC),
    Route("GET", "/ready", site.get_ready, "ready", "meta", policy=P.PUBLIC, statuses=(200, 503)),
    Route("GET", "/metrics", get_metrics, "metrics", "meta", content="text/plain", policy=P.PUBLIC),
]  # fmt: skip


# The demo site (setting `demo`): its pages, and the demo GMS (api/demo_gms.py).
DEMO_ROUTES: list[Route] = [
    Route("GET", "/", site.redirect_to_demo, "root", "demo", policy=P.PUBLIC),
    Route("GET", "/demo", site.redirect_to_demo, "demo-bare", "demo", policy=P.PUBLIC),
    Route("GET", "/demo/", site.demo_index, "demo-index", "demo", content="text/html",
          policy=P.PUBLIC),
]  # fmt: skip


def setup_routes(app: web.Application, demo: bool) -> None:
    add_routes(app, ROUTES)  # each behind its policy
    if demo:
        setup_demo_gms(app)
        add_routes(app, DEMO_ROUTES)
        app.router.add_static("/demo/", site.DEMO_DIR, name="demo", append_version=False)
