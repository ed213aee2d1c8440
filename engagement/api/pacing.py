"""Pacing over REST: GWE's reactiveState, and the engine's per-group picture."""

from __future__ import annotations

import re
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from ..monitoring.ingest import now_ms
from ..pacing.model import Channel, Plan
from ..strategy.schema import NAME
from .parsing import parse_query
from .state import PACER

MAX_GROUPS_PER_QUERY = 100  # a site asks about a few groups; more is a mistake or abuse


class ReactiveStateQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel = Field(description="chat or webcallback")
    groups: list[Annotated[str, StringConstraints(pattern=NAME)]] = Field(
        default_factory=list,
        max_length=MAX_GROUPS_PER_QUERY,
        description="agent groups (repeat: groups=A&groups=B); none: every group of the channel",
    )

    @field_validator("groups")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(NAME, name):
                raise ValueError(f"group {name!r} is not a valid name")
        return value


class ReactiveStateOut(BaseModel):
    reactiveState: float = Field(
        description="probability that one more reactive engagement should be allowed"
    )


class CapacityOut(BaseModel):
    agentsReady: int
    agentsBusy: int
    chatsPerAgent: int
    slots: int
    inProgress: int
    queued: int
    free: int
    avgHandleTimeS: float
    estimatedWaitS: float


class GroupPacingOut(BaseModel):
    group: str
    algorithm: str
    optimizationTarget: str
    optimizationGoal: float
    refreshPeriod: float
    proactiveRatio: float
    channel: str
    feed: str = Field(description="fresh, stale or unreported")
    openWithoutLimit: bool = Field(description="stale or unreported, treated as open")
    capacity: CapacityOut | None
    inFlight: dict[str, int] = Field(description="invited (unanswered), accepted (not connected)")
    predictedAnswers: float = Field(description="acceptances expected from what is in flight")
    expectedReleases: float
    room: float
    acceptanceRate: float
    answerTimeS: float
    allowedNow: int
    allowedPerMinute: float
    reactiveState: float
    waiting: int = Field(description="paced visitors in line")


class PacingOut(BaseModel):
    groups: list[GroupPacingOut]


def plan_json(plan: Plan) -> dict[str, Any]:
    cfg, cap = plan.config, plan.capacity
    capacity = None
    if cap is not None:
        capacity = {
            "agentsReady": cap.agents_ready, "agentsBusy": cap.agents_busy,
            "chatsPerAgent": cap.chats_per_agent, "slots": cap.slots,
            "inProgress": cap.in_progress, "queued": cap.queued, "free": cap.free,
            "avgHandleTimeS": cap.avg_handle_time_s, "estimatedWaitS": cap.estimated_wait_s,
        }  # fmt: skip
    return {
        "group": plan.group,
        "algorithm": cfg.algorithm.value,
        "optimizationTarget": cfg.target.value,
        "optimizationGoal": cfg.goal_pct,
        "refreshPeriod": cfg.refresh_period_s,
        "proactiveRatio": cfg.proactive_ratio,
        "channel": cfg.channel.value,
        "feed": plan.state,
        "openWithoutLimit": plan.open_without_limit,
        "capacity": capacity,
        "inFlight": {"invited": len(plan.pending.invited), "accepted": plan.pending.accepted},
        "predictedAnswers": round(plan.pending.predicted_answers, 3),
        "expectedReleases": plan.releases,
        "room": plan.room,
        "acceptanceRate": plan.acceptance,
        "answerTimeS": plan.answer_time_s,
        "allowedNow": plan.allowed_now,
        "allowedPerMinute": plan.allowed_per_minute,
        "reactiveState": plan.reactive_state,
        "waiting": plan.queued_visitors,
    }


def pacing_json(request: web.Request) -> dict[str, Any]:
    pacer, now = request.app[PACER], now_ms()
    return {"groups": [plan_json(pacer.plan(group, now)) for group in pacer.groups()]}


async def reactive_state(request: web.Request) -> web.StreamResponse:
    """GWE's reactiveState: from a site's page (allowed Origin) or a server (API key)."""
    query = parse_query(request, ReactiveStateQuery)
    p = request.app[PACER].reactive_state(query.channel, query.groups, now_ms())
    return web.json_response({"reactiveState": p})


async def get_pacing(request: web.Request) -> web.StreamResponse:
    """Per agent group: capacity, in flight, predicted answers, invitations allowed."""
    return web.json_response(pacing_json(request))
