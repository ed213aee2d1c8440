"""Loaded strategies and their errors; the agent availability feed."""

from __future__ import annotations

import re
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ..monitoring.ingest import now_ms
from ..strategy.schema import NAME
from .auth import api_key_required
from .errors import InvalidInput
from .parsing import parse_json
from .state import AVAILABILITY, LIBRARY


class StrategyErrorOut(BaseModel):
    file: str
    line: int
    column: int
    message: str


class StrategyOut(BaseModel):
    name: str
    description: str
    priority: int
    source: str
    line: int
    triggers: list[str]
    media: str
    invite: str
    decide: str


class StrategiesOut(BaseModel):
    strategies: list[StrategyOut]
    categories: dict[str, list[str]]
    declaredEvents: list[str]
    errors: list[StrategyErrorOut]


class AvailabilityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agentsReady: Annotated[int, Field(ge=0)]
    estimatedWaitS: Annotated[float, Field(ge=0)] = 0.0


class AvailabilityOut(BaseModel):
    groups: dict[str, dict[str, float]]


@api_key_required
async def get_strategies(request: web.Request) -> web.StreamResponse:
    """The strategies running now, and the files that did not load (file, line, column)."""
    library = request.app[LIBRARY]
    current = library.current
    return web.json_response(
        {
            "strategies": [
                {
                    "name": s.name,
                    "description": s.description,
                    "priority": s.priority,
                    "source": s.source,
                    "line": s.line,
                    "triggers": sorted(s.keys),
                    "media": s.offer.media,
                    "invite": s.offer.invite,
                    "decide": s.decide,
                }
                for s in current.strategies
            ],
            "categories": current.categories,
            "declaredEvents": [e.name for e in current.declared_events],
            "errors": [e.as_json() for e in library.all_errors()],
        }
    )


@api_key_required
async def put_availability(request: web.Request) -> web.StreamResponse:
    """Report a group's agents: how many are ready and the estimated wait."""
    group = request.match_info["group"]
    if not re.fullmatch(NAME, group):
        raise InvalidInput(
            f"group {group!r} is not a valid name (letters, digits, '_', '.', '-')",
            details=[{"field": "group", "message": "invalid name"}],
        )
    body = await parse_json(request, AvailabilityIn)
    request.app[AVAILABILITY].report(group, body.agentsReady, body.estimatedWaitS, now_ms())
    return await get_availability.__wrapped__(request)  # type: ignore[attr-defined,no-any-return]


@api_key_required
async def get_availability(request: web.Request) -> web.StreamResponse:
    """Agent availability per group, as last reported."""
    groups = request.app[AVAILABILITY].groups
    return web.json_response(
        {
            "groups": {
                name: {
                    "agentsReady": g.agents_ready,
                    "estimatedWaitS": g.estimated_wait_s,
                    "updatedAt": g.updated_at,
                }
                for name, g in groups.items()
            }
        }
    )
