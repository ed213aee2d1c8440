"""The timers' task: it ends when cancelled, also when a Redis call turns the cancel into an
error or returns instead of raising it (redis-py can: the task then looped for ever and a
node's stop waited on it)."""

from __future__ import annotations

import asyncio

from engagement.lifecycle.timers import run_timers
from tests.lifecycle.conftest import World

DEADLINE_S = 10  # a deadline to wait for the task, not a timing assertion


class CancelBecomesAnError:
    """A shared schedule whose call, cancelled while it waits, raises a connection error
    (once: a second cancel goes through, so that a failing test still ends)."""

    def __init__(self) -> None:
        self.ticking = asyncio.Event()
        self.turned = 0

    async def tick(self, now: int) -> int:
        self.ticking.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if self.turned:
                raise
            self.turned += 1
            self.cancelled()
        return 0

    def cancelled(self) -> None:
        raise ConnectionError("Connection closed by server.") from None


class CancelSwallowed(CancelBecomesAnError):
    """A shared schedule whose call, cancelled while it waits, returns as if it had ticked (a
    client that caught the cancel and did not raise it again): seen as a node's stop that hung
    in a test's teardown for five minutes."""

    def cancelled(self) -> None:
        pass


async def stops_when_cancelled(world: World, shared: CancelBecomesAnError) -> None:
    task = asyncio.create_task(run_timers(world.owner, tick_s=0, shared=shared))
    await shared.ticking.wait()

    task.cancel()

    done, _ = await asyncio.wait({task}, timeout=DEADLINE_S)
    assert task in done
    assert task.cancelled()


async def test_the_timers_stop_when_a_cancel_comes_back_as_a_connection_error(world: World):
    await stops_when_cancelled(world, CancelBecomesAnError())


async def test_the_timers_stop_when_a_cancel_is_swallowed(world: World):
    await stops_when_cancelled(world, CancelSwallowed())
