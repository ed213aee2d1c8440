"""The supervisor and agent console: live visitors, visit details, invite now, strategy report.

Served by the engine under /console/ (jinja2 pages, a small script, no build step), signed in
with the API key. ``setup_console`` adds its routes; nothing happens at import time.
"""

from __future__ import annotations

from aiohttp import web

from ..api.policy import add_routes
from ..api.route import Policy, Route
from ..roles import Role
from . import experiments, login, pacing, past, report, simulate, visitors
from .session import SESSIONS, Sessions
from .templating import STATIC_DIR, TEMPLATES, build_environment


async def _to_console(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(str(request.app.router["console-visitors"].url_for()))


P = Policy
R = Role
CONSOLE_ROUTES: list[Route] = [
    Route("GET", "/console/login", login.login_form, "console-login", "console", P.PUBLIC),
    Route("POST", "/console/login", login.login, "console-login-post", "console", P.PUBLIC),
    Route("POST", "/console/logout", login.logout, "console-logout", "console", P.CONSOLE_PAGE,
          role=R.AGENT),
    Route("GET", "/console/", visitors.visitors_page, "console-visitors", "console",
          P.CONSOLE_PAGE, role=R.AGENT),
    Route("GET", "/console/visitors.json", visitors.visitors_json, "console-visitors-json",
          "console", P.CONSOLE_DATA, role=R.AGENT),
    Route("GET", "/console/visits/{visitID}", visitors.visit_page, "console-visit", "console",
          P.CONSOLE_PAGE, role=R.AGENT),
    Route("GET", "/console/past", past.past_visits_page, "console-past-visits", "console",
          P.CONSOLE_PAGE, role=R.AGENT),
    Route("POST", "/console/visits/{visitID}/invite", visitors.invite_now, "console-invite",
          "console", P.CONSOLE_PAGE, role=R.AGENT),
    Route("GET", "/console/reports", report.report_page, "console-reports", "console",
          P.CONSOLE_PAGE, role=R.SUPERVISOR),
    Route("GET", "/console/reports.csv", report.report_csv, "console-reports-csv", "console",
          P.CONSOLE_DATA, role=R.SUPERVISOR),
    Route("GET", "/console/experiments", experiments.experiments_page, "console-experiments",
          "console", P.CONSOLE_PAGE, role=R.SUPERVISOR),
    Route("GET", "/console/experiments.csv", experiments.experiments_csv,
          "console-experiments-csv", "console", P.CONSOLE_DATA, role=R.SUPERVISOR),
    Route("GET", "/console/pacing", pacing.pacing_page, "console-pacing", "console",
          P.CONSOLE_PAGE, role=R.SUPERVISOR),
    Route("GET", "/console/pacing/live", pacing.pacing_live, "console-pacing-live", "console",
          P.CONSOLE_DATA, role=R.SUPERVISOR),
    Route("GET", "/console/simulate", simulate.simulate_form, "console-simulate", "console",
          P.CONSOLE_PAGE, role=R.SUPERVISOR),
    Route("POST", "/console/simulate", simulate.simulate_run, "console-simulate-run", "console",
          P.CONSOLE_PAGE, role=R.SUPERVISOR),
    Route("GET", "/console", _to_console, "console-bare", "console", P.PUBLIC),
]  # fmt: skip
# The JSON API of the report: API key only, documented by its pydantic models.
REPORT_API_ROUTE = Route(
    "GET", "/api/v1/reports/strategies", report.get_strategy_report, "report-strategies",
    "reports", P.API_KEY, role=R.SUPERVISOR,
)  # fmt: skip


def setup_console(app: web.Application) -> None:
    """Add the console's routes (and the report API, unless the route table already has it)."""
    app[TEMPLATES] = build_environment()
    app[SESSIONS] = Sessions()
    add_routes(app, CONSOLE_ROUTES)  # each behind its policy
    app.router.add_static(
        "/console/static/", STATIC_DIR, name="console-static", append_version=True
    )
    if REPORT_API_ROUTE.name not in app.router.named_resources():
        add_routes(app, [REPORT_API_ROUTE])
