"""Past visits: search the history by visitID, globalVisitID, identity and UTC days, newest
first, page by page; each opens the visit's page."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..api.parsing import iso_day
from ..api.state import HISTORY
from ..visits.search import Cursor, VisitQuery, search_visits
from .templating import render
from .visitors import display_name

PAST_VISITS_PAGE = 50  # rows per page: one screen, one cheap keyset read
FIELDS = ("visitID", "globalVisitID", "identity", "from", "until")
_ID = r"^([0-9A-Fa-f]{32})?$"
_CURSOR = re.compile(r"^(\d{1,15})\.([0-9A-F]{32})$")
DAY_MS = 86_400_000


class PastVisitsForm(BaseModel):
    """The search form; every field optional (empty: any)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    visitID: str = Field("", pattern=_ID, description="32 hex characters")
    globalVisitID: str = Field("", pattern=_ID, description="32 hex characters")
    identity: str = Field("", max_length=200, description="identity ID, e-mail or name")
    since: dt.date | None = Field(None, alias="from", description="first UTC day, YYYY-MM-DD")
    until: dt.date | None = Field(None, description="last UTC day (included), YYYY-MM-DD")
    after: str = Field("", max_length=64, description="where the previous page ended")

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_day(cls, value: Any) -> dt.date | None:
        return iso_day(value)

    @field_validator("after")
    @classmethod
    def _cursor(cls, value: str) -> str:
        if value and not _CURSOR.match(value):
            raise ValueError("not a position in the list: start again from the first page")
        return value

    def query(self) -> VisitQuery:
        def day_ms(day: dt.date) -> int:
            return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)

        return VisitQuery(
            visit_id=self.visitID.upper() or None,
            global_visit_id=self.globalVisitID.upper() or None,
            identity=self.identity.strip() or None,
            since_ms=day_ms(self.since) if self.since else None,
            until_ms=day_ms(self.until) + DAY_MS if self.until else None,
        )

    def cursor(self) -> Cursor | None:
        match = _CURSOR.match(self.after)
        return (int(match[1]), match[2]) if match else None


async def past_visits_page(request: web.Request) -> web.StreamResponse:
    """The search form and one page of matching visits, newest first."""
    form = {k: request.query.get(k, "") for k in FIELDS}
    context: dict[str, Any] = {"form": form, "error": None, "visits": [], "next": None}
    try:
        parsed = PastVisitsForm.model_validate({**form, "after": request.query.get("after", "")})
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        context["error"] = f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
        return render(request, "past.html", context, status=400)
    visits, last = await search_visits(
        request.app[HISTORY], parsed.query(), parsed.cursor(), PAST_VISITS_PAGE
    )
    context["visits"] = [{**v, "name": display_name(v["userInfo"])} for v in visits]
    context["first_page"] = not parsed.after
    if last is not None:
        here = str(request.app.router["console-past-visits"].url_for())
        kept = {k: v for k, v in form.items() if v}
        context["next"] = f"{here}?{urlencode({**kept, 'after': f'{last[0]}.{last[1]}'})}"
    return render(request, "past.html", context)
