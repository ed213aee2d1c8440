"""The strategy report: a console page with its chart, its CSV export, and the JSON API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .. import reports
from ..api.errors import InvalidInput
from ..api.parsing import iso_day, parse_query
from ..api.state import HISTORY
from .chart import funnel_chart
from .templating import render

_CAMEL = {"timed_out": "timedOut"}  # the API's keys are camelCase


ANY_DAY: dict[str, Any] = {"anyOf": [{"type": "string", "format": "date"}, {"const": ""}]}


class ReportQuery(BaseModel):
    """Inclusive UTC days, both optional (unbounded), and one strategy (all when absent)."""

    model_config = ConfigDict(populate_by_name=True)

    since: dt.date | None = Field(
        None, alias="from", description="first UTC day, YYYY-MM-DD", json_schema_extra=ANY_DAY
    )
    until: dt.date | None = Field(
        None, description="last UTC day (included), YYYY-MM-DD", json_schema_extra=ANY_DAY
    )
    strategy: str | None = Field(None, max_length=200, description="one strategy's name")

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_day(cls, value: Any) -> dt.date | None:
        return iso_day(value)

    @field_validator("strategy", mode="before")
    @classmethod
    def _blank_is_all(cls, value: Any) -> Any:
        return None if value == "" else value

    def as_filter(self) -> reports.ReportFilter:
        if self.since and self.until and self.since > self.until:
            raise InvalidInput(
                f"invalid query: from {self.since} is after until {self.until}",
                details=[{"field": "from", "message": "after until"}],
            )
        return reports.ReportFilter(self.since, self.until, self.strategy)


class FunnelOut(BaseModel):
    detected: int
    paced: int = Field(description="held back for want of agents (pacing)")
    offered: int
    shown: int
    accepted: int
    declined: int
    timedOut: int
    launched: int
    completed: int
    acceptanceRate: float | None = Field(description="accepted / shown; null if none shown")


class StrategyDayOut(FunnelOut):
    strategy: str
    day: str = Field(description="UTC day of the attempts' creation, YYYY-MM-DD")


class StrategyTotalOut(FunnelOut):
    strategy: str


class StrategyReportOut(BaseModel):
    """Each attempt counts in every state its transitions reached."""

    model_config = ConfigDict(populate_by_name=True)

    since: str | None = Field(alias="from")
    until: str | None
    strategy: str | None
    days: list[StrategyDayOut] = Field(description="one per strategy and UTC day")
    strategies: list[StrategyTotalOut] = Field(description="the days summed per strategy")


def _funnel_json(row: reports.FunnelRow) -> dict[str, Any]:
    day = {"day": row.day.isoformat()} if row.day else {}
    counts = {_CAMEL.get(state, state): n for state, n in row.counts.items()}
    return {"strategy": row.strategy, **day, **counts, "acceptanceRate": row.acceptance_rate}


def report_json(query: ReportQuery, rows: list[reports.FunnelRow]) -> dict[str, Any]:
    return {
        "from": query.since.isoformat() if query.since else None,
        "until": query.until.isoformat() if query.until else None,
        "strategy": query.strategy,
        "days": [_funnel_json(r) for r in rows],
        "strategies": [_funnel_json(r) for r in reports.totals(rows)],
    }


async def get_strategy_report(request: web.Request) -> web.StreamResponse:
    """The strategy funnel per strategy and UTC day: detected to completed."""
    query = parse_query(request, ReportQuery)
    rows = await reports.read_report(request.app[HISTORY], query.as_filter())
    return web.json_response(report_json(query, rows))


async def report_csv(request: web.Request) -> web.StreamResponse:
    """The report's rows as CSV, with the page's filters."""
    query = parse_query(request, ReportQuery)
    rows = await reports.read_report(request.app[HISTORY], query.as_filter())
    name = f"strategy-report-{query.since or 'start'}-{query.until or 'now'}.csv"
    return web.Response(
        text=reports.to_csv(rows),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def report_page(request: web.Request) -> web.StreamResponse:
    """The report with its chart; filters in a GET form."""
    form = {k: request.query.get(k, "") for k in ("from", "until", "strategy")}
    history = request.app[HISTORY]
    context: dict[str, Any] = {
        "form": form,
        "names": await reports.strategy_names(history),
        "error": None,
        "rows": [],
        "totals": [],
        "chart": None,
        "steps": reports.FUNNEL,
        "csv_query": request.query_string,
    }
    try:
        query = ReportQuery.model_validate(form)
        where = query.as_filter()
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        context["error"] = f"{error['loc'][0]}: {error['msg']}"
        return render(request, "reports.html", context, status=400)
    except InvalidInput as exc:
        context["error"] = exc.message.removeprefix("invalid query: ")
        return render(request, "reports.html", context, status=400)
    rows = await reports.read_report(history, where)
    totals = reports.totals(rows)
    context.update(rows=rows, totals=totals, chart=funnel_chart(totals))
    return render(request, "reports.html", context)
