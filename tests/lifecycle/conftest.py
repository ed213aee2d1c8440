"""The lifecycle owner on an injected clock, with real in-process parts around it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

from engagement.attempts import Attempt, Origin
from engagement.lifecycle.owner import Lifecycle, Timeouts
from engagement.notifications.hub import LocalHub
from engagement.strategy.engine import Engine, StrategySet
from engagement.visits.model import Event, Visit
from engagement.visits.registry import VisitRegistry
from tests.strategy.helpers import T0, NoFeed, VisitBuilder, enter, start, strategy

TIMEOUTS = Timeouts(
    detected_s=30,
    offered_s=30,
    accepted_s=120,
    launched_s=3600,
    queued_s=1000,
    form_s=120,
    shown_grace_s=5,
)


@dataclass
class Clock:
    now: int = T0

    def __call__(self) -> int:
        return self.now

    def at(self, seconds: float) -> int:
        """Move to ``seconds`` after T0."""
        self.now = T0 + round(seconds * 1000)
        return self.now


@dataclass
class MemoryHistory:
    """The history store's protocol, in memory: what was queued and what was committed."""

    queued: dict[str, dict[str, Any]] = field(default_factory=dict)
    committed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, visit: Visit, events: list[Event]) -> None:
        pass

    def record_closed(self, visit: Visit) -> None:
        pass

    def record_attempt(self, attempt: Attempt) -> None:
        self.queued[attempt.attempt_id] = attempt.as_json()

    async def shared(self, attempt: Attempt) -> None:
        pass

    async def write_attempt(self, attempt: Attempt) -> None:
        await asyncio.sleep(0)  # a real store awaits its commit
        self.committed[attempt.attempt_id] = attempt.as_json()


@dataclass
class Spawned:
    """Background work the owner starts (launchers, announcements), run when a test says."""

    tasks: list[tuple[str, Coroutine[Any, Any, None]]] = field(default_factory=list)

    def __call__(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self.tasks.append((name, coro))

    async def run(self) -> list[str]:
        names = [name for name, _ in self.tasks]
        for _, coro in self.tasks:
            await coro
        self.tasks.clear()
        return names


@dataclass
class World:
    clock: Clock
    history: MemoryHistory
    hub: LocalHub
    registry: VisitRegistry
    engine: Engine
    spawned: Spawned
    owner: Lifecycle
    builder: VisitBuilder

    @property
    def visit(self) -> Visit:
        """The registry's visit (the builder keeps its own copy to number pages)."""
        visit = self.registry.get(self.builder.visit_id)
        assert visit is not None
        return visit

    def events(self, *steps: Any) -> list[Event]:
        events = self.builder.apply(*steps)
        fresh, _ = self.registry.ingest(events)
        return fresh

    def new_attempt(self, media: str = "chat", name: str = "s") -> Attempt:
        """An attempt of strategy ``name`` offered now."""
        attempt = self.owner.new_attempt(
            self.visit, name, Origin.STRATEGY, "chat.html", media, {}, 30
        )
        return self.owner.add(self.visit, attempt)


def make_world(strategies: list[str | dict[str, Any]] | None = None, strict: bool = True) -> World:
    clock = Clock()
    history = MemoryHistory()
    hub = LocalHub()
    registry = VisitRegistry(history, 1800)
    compiled = [strategy(text) for text in strategies or []]
    engine = Engine(StrategySet(compiled), NoFeed(), strict=strict)
    spawned = Spawned()
    owner = Lifecycle(registry, engine, history, hub, clock, spawned, TIMEOUTS)
    builder = VisitBuilder()
    registry.ingest(builder.apply(start(0), enter("/", 0)))
    return World(clock, history, hub, registry, engine, spawned, owner, builder)


@pytest.fixture
def world() -> World:
    return make_world()
