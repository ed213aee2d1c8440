"""The supervisor and agent console: live visitors, visit details, invite now, strategy report.

Served by the engine under /console/ (jinja2 pages, a small script, no build step), signed in
with the API key. ``setup_console`` adds its routes; nothing happens at import time.
"""

from __future__ import annotations

from aiohttp import web

from . import experiments, login, pacing, past, report, simulate, visitors
from .session import SESSIONS, Handler, Sessions
from .templating import STATIC_DIR, TEMPLATES, build_environment

# method, path, handler, name
CONSOLE_ROUTES: list[tuple[str, str, Handler, str]] = [
    ("GET", "/console/login", login.login_form, "console-login"),
    ("POST", "/console/login", login.login, "console-login-post"),
    ("POST", "/console/logout", login.logout, "console-logout"),
    ("GET", "/console/", visitors.visitors_page, "console-visitors"),
    ("GET", "/console/visitors.json", visitors.visitors_json, "console-visitors-json"),
    ("GET", "/console/visits/{visitID}", visitors.visit_page, "console-visit"),
    ("GET", "/console/past", past.past_visits_page, "console-past-visits"),
    ("POST", "/console/visits/{visitID}/invite", visitors.invite_now, "console-invite"),
    ("GET", "/console/reports", report.report_page, "console-reports"),
    ("GET", "/console/reports.csv", report.report_csv, "console-reports-csv"),
    ("GET", "/console/experiments", experiments.experiments_page, "console-experiments"),
    ("GET", "/console/experiments.csv", experiments.experiments_csv, "console-experiments-csv"),
    ("GET", "/console/pacing", pacing.pacing_page, "console-pacing"),
    ("GET", "/console/pacing/live", pacing.pacing_live, "console-pacing-live"),
    ("GET", "/console/simulate", simulate.simulate_form, "console-simulate"),
    ("POST", "/console/simulate", simulate.simulate_run, "console-simulate-run"),
]
# The JSON API of the report: API key only, documented by its pydantic models.
REPORT_API_ROUTE: tuple[str, str, Handler, str] = (
    "GET",
    "/api/v1/reports/strategies",
    report.get_strategy_report,
    "report-strategies",
)


async def _to_console(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(str(request.app.router["console-visitors"].url_for()))


def setup_console(app: web.Application) -> None:
    """Add the console's routes (and the report API, unless the route table already has it)."""
    app[TEMPLATES] = build_environment()
    app[SESSIONS] = Sessions()
    for method, path, handler, name in CONSOLE_ROUTES:
        app.router.add_route(method, path, handler, name=name)
    app.router.add_get("/console", _to_console, name="console-bare")
    app.router.add_static(
        "/console/static/", STATIC_DIR, name="console-static", append_version=True
    )
    method, path, handler, name = REPORT_API_ROUTE
    if name not in app.router.named_resources():
        app.router.add_route(method, path, handler, name=name)
