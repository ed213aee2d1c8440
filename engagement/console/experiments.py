"""The experiment report: the JSON API, the console page with its chart, and the CSV export."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import reports
from ..api.errors import InvalidInput
from ..api.parsing import parse_query
from ..api.state import HISTORY, LIBRARY
from ..experiments import report as xr
from ..experiments.stats import CONFIDENCE, Lift
from .chart import experiment_chart
from .report import ReportQuery
from .templating import render


class LiftOut(BaseModel):
    difference: float = Field(description="conversion rate minus the holdout's (0.02 = +2 points)")
    low: float = Field(description="95 % interval, lower end (Newcombe hybrid score)")
    high: float = Field(description="95 % interval, upper end")
    relative: float | None = Field(description="difference / holdout rate; null if that is 0")
    significant: bool = Field(description="the interval excludes 0")


class ArmOut(BaseModel):
    strategy: str
    arm: str = Field(description="holdout, a variant's name, invited (no variants), all invited")
    qualified: int = Field(description="visitors the strategy picked (globalVisitIDs)")
    shown: int = Field(description="visitors who saw the invitation")
    accepted: int
    converted: int = Field(description="visitors who reached the goal within its window")
    conversionRate: float | None = Field(description="converted / qualified")
    rateLow: float | None = Field(description="95 % Wilson interval of the rate, lower end")
    rateHigh: float | None
    value: float = Field(
        description="sum of the goal's value field over the arm's goal events (each once)"
    )
    valuePerVisitor: float | None = Field(
        description="value / qualified: what the arm brought per visitor picked (compare arms on "
        "it, not on value)"
    )
    lift: LiftOut | None = Field(description="against the holdout; null for it, or without one")


class ExperimentReportOut(BaseModel):
    """Per strategy and arm; visitors count by assignment, shown or not."""

    model_config = ConfigDict(populate_by_name=True)

    since: str | None = Field(alias="from")
    until: str | None
    strategy: str | None
    confidence: float
    arms: list[ArmOut]


def _running(request: web.Request) -> set[str]:
    """The strategies running now that run an experiment (a goal, holdout or variants)."""
    strategies = request.app[LIBRARY].current.strategies
    return {s.name for s in strategies if s.experiment is not None}


def arm_json(row: xr.ArmRow) -> dict[str, Any]:
    interval = row.rate_interval
    lf = row.lift
    return {
        "strategy": row.strategy,
        "arm": row.arm,
        "qualified": row.qualified,
        "shown": row.shown,
        "accepted": row.accepted,
        "converted": row.converted,
        "conversionRate": row.rate,
        "rateLow": interval[0] if interval else None,
        "rateHigh": interval[1] if interval else None,
        "value": row.value,
        "valuePerVisitor": row.value_per_visitor,
        "lift": None if lf is None else _lift_json(lf),
    }


def _lift_json(lf: Lift) -> dict[str, Any]:
    return {
        "difference": lf.difference,
        "low": lf.low,
        "high": lf.high,
        "relative": lf.relative,
        "significant": lf.significant,
    }


async def get_experiment_report(request: web.Request) -> web.StreamResponse:
    """Experiments per strategy and arm: conversions and lift against the holdout."""
    query = parse_query(request, ReportQuery)
    rows = await xr.read_experiments(request.app[HISTORY], query.as_filter(), _running(request))
    return web.json_response({
        "from": query.since.isoformat() if query.since else None,
        "until": query.until.isoformat() if query.until else None,
        "strategy": query.strategy,
        "confidence": CONFIDENCE,
        "arms": [arm_json(r) for r in rows],
    })  # fmt: skip


async def experiments_csv(request: web.Request) -> web.StreamResponse:
    """The experiment rows as CSV, with the page's filters."""
    query = parse_query(request, ReportQuery)
    rows = await xr.read_experiments(request.app[HISTORY], query.as_filter(), _running(request))
    name = f"experiments-{query.since or 'start'}-{query.until or 'now'}.csv"
    return web.Response(
        text=xr.to_csv(rows),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def experiments_page(request: web.Request) -> web.StreamResponse:
    """Conversion per arm with its interval, and the lift over the holdout."""
    form = {k: request.query.get(k, "") for k in ("from", "until", "strategy")}
    history = request.app[HISTORY]
    context: dict[str, Any] = {"form": form, "error": None, "rows": [], "chart": None,
                               "names": await reports.strategy_names(history),
                               "csv_query": request.query_string}  # fmt: skip
    try:
        where = ReportQuery.model_validate(form).as_filter()
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        context["error"] = f"{error['loc'][0]}: {error['msg']}"
        return render(request, "experiments.html", context, status=400)
    except InvalidInput as exc:
        context["error"] = exc.message.removeprefix("invalid query: ")
        return render(request, "experiments.html", context, status=400)
    rows = await xr.read_experiments(history, where, _running(request))
    context.update(rows=rows, chart=experiment_chart(rows))
    return render(request, "experiments.html", context)
