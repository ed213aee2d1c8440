"""The console's jinja2 environment, page responses and flash messages."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from ..api.auth import PRINCIPAL
from ..api.route import ROUTE_ROLES
from ..roles import Role
from .session import CSRF_FIELD, SESSION, csrf_token

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
TEMPLATES = web.AppKey("console_templates", jinja2.Environment)

NONE = "\N{EN DASH}"  # an absent value in a table
FLASH_COOKIE = "_eng_console_flash"
FLASH_TTL_S = 60  # read by the page the redirect leads to, seconds later at most
# Pages hold visit data: never cached, never framed, scripts and styles from the engine only.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def build_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # visit data (URLs, titles, event data) can never inject markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = utc_time
    env.filters["duration"] = duration
    env.filters["pretty_json"] = lambda value: json.dumps(
        value, indent=1, sort_keys=True, ensure_ascii=False
    )
    env.filters["percent"] = lambda rate: NONE if rate is None else f"{rate * 100:.1f} %"
    return env


def utc_time(ms: int | None, with_date: bool = True) -> str:
    if ms is None:
        return NONE
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def duration(seconds: float | None) -> str:
    """``42 s``, ``3 min 07 s``, ``1 h 02 min``."""
    if seconds is None:
        return NONE
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def render(
    request: web.Request, name: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    """A console page; the flash message waiting for it is shown once, then dropped."""
    session = request.get(SESSION)
    who = request.get(PRINCIPAL)
    roles = request.app.get(ROUTE_ROLES, {})
    flash = read_flash(request)
    html = (
        request.app[TEMPLATES]
        .get_template(name)
        .render(
            {
                "url": lambda route, **parts: str(request.app.router[route].url_for(**parts)),
                "static": lambda filename: str(
                    request.app.router["console-static"].url_for(filename=filename)
                ),
                "signed_in": session is not None,
                "who": who,
                # whether the reader's role may use a route (navigation shows only those)
                "can": lambda route: (
                    who is not None and who.role.allows(roles.get(route, Role.ADMIN))
                ),
                "csrf_field": CSRF_FIELD,
                "csrf": csrf_token(session) if session else "",
                "flash": flash,
                "path": request.path,
                **context,
            }
        )
    )
    response = web.Response(text=html, content_type="text/html", status=status)
    response.headers.update(PAGE_HEADERS)
    if flash is not None:
        response.del_cookie(FLASH_COOKIE, path="/console")
    return response


def redirect(location: str, flash: tuple[str, str] | None = None) -> web.Response:
    """303 to ``location``, with a message ``(kind, text)`` for the page it leads to."""
    response = web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})
    if flash is not None:
        kind, text = flash
        value = base64.urlsafe_b64encode(json.dumps([kind, text]).encode()).decode()
        response.set_cookie(
            FLASH_COOKIE,
            value,
            max_age=FLASH_TTL_S,
            path="/console",
            httponly=True,
            samesite="Strict",
        )
    return response


def read_flash(request: web.Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        kind, text = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (ValueError, TypeError, RecursionError):  # anything a client may put in a cookie
        return None
    if kind not in ("ok", "error") or not isinstance(text, str):
        return None
    return {"kind": kind, "text": text}
