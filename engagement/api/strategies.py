"""Loaded strategies and their errors; the agent availability feed."""

from __future__ import annotations

import re
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ..availability import GroupState
from ..monitoring.bounds import WHOLE
from ..monitoring.ingest import now_ms
from ..strategy.schema import NAME
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
    """A group's agents now. Only agentsReady is required; the rest makes pacing sharper."""

    model_config = ConfigDict(extra="forbid")

    agentsReady: Annotated[int, Field(ge=0, le=100_000), WHOLE] = Field(
        description="agents signed in and able to take one more interaction"
    )
    agentsBusy: Annotated[int, Field(ge=0, le=100_000), WHOLE] = Field(
        0, description="agents signed in at full load (or in after-call work)"
    )
    chatsPerAgent: Annotated[int, Field(ge=1, le=50), WHOLE] | None = Field(
        None, description="interactions one agent carries at once (default: the group's setting)"
    )
    interactionsInProgress: Annotated[int, Field(ge=0, le=5_000_000), WHOLE] | None = Field(
        None, description="interactions being handled (default: agentsBusy x chatsPerAgent)"
    )
    queued: Annotated[int, Field(ge=0, le=5_000_000), WHOLE] = Field(
        0, description="interactions waiting in the group's queue, reactive ones included"
    )
    avgHandleTimeS: Annotated[float, Field(gt=0, le=86_400)] | None = Field(
        None, description="average handle time (default: the group's setting)"
    )
    estimatedWaitS: Annotated[float, Field(ge=0)] = 0.0


class GroupAvailabilityOut(BaseModel):
    agentsReady: int
    agentsBusy: int
    chatsPerAgent: int | None
    interactionsInProgress: int | None
    queued: int
    avgHandleTimeS: float | None
    estimatedWaitS: float
    updatedAt: int = Field(description="engine ms")
    state: str = Field(description="fresh, or stale (treated as availability_when_stale says)")


class AvailabilityOut(BaseModel):
    groups: dict[str, GroupAvailabilityOut]


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


async def put_availability(request: web.Request) -> web.StreamResponse:
    """Report a group's agents: how many are ready and the estimated wait."""
    group = request.match_info["group"]
    if not re.fullmatch(NAME, group):
        raise InvalidInput(
            f"group {group!r} is not a valid name (letters, digits, '_', '.', '-')",
            details=[{"field": "group", "message": "invalid name"}],
        )
    body = await parse_json(request, AvailabilityIn)
    state = GroupState(
        agents_ready=body.agentsReady, estimated_wait_s=body.estimatedWaitS, updated_at=now_ms(),
        agents_busy=body.agentsBusy, chats_per_agent=body.chatsPerAgent,
        in_progress=body.interactionsInProgress, queued=body.queued,
        avg_handle_time_s=body.avgHandleTimeS,
    )  # fmt: skip
    request.app[AVAILABILITY].report(group, state)
    return await get_availability(request)


async def get_availability(request: web.Request) -> web.StreamResponse:
    """Agent availability per group, as last reported, and whether each report is fresh."""
    board = request.app[AVAILABILITY]
    now = now_ms()
    return web.json_response(
        {
            "groups": {
                name: {
                    "agentsReady": g.agents_ready,
                    "agentsBusy": g.agents_busy,
                    "chatsPerAgent": g.chats_per_agent,
                    "interactionsInProgress": g.in_progress,
                    "queued": g.queued,
                    "avgHandleTimeS": g.avg_handle_time_s,
                    "estimatedWaitS": g.estimated_wait_s,
                    "updatedAt": g.updated_at,
                    "state": board.freshness(name, now).value,
                }
                for name, g in board.groups.items()
            }
        }
    )
