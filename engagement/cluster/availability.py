"""The availability feed shared by the nodes: a report reaching one node paces them all.

The feed sends ``PUT /api/v1/availability/{group}`` through the load balancer, so it reaches
one node. That node keeps the report and writes it behind to Redis (a hash of the latest report
per group, never replaced by an older one); every node pulls the hash each pacing tick, so all
nodes pace from the same report within one tick.
"""

from __future__ import annotations

import dataclasses
import json

from ..availability import AvailabilityBoard, GroupState
from .redis import RedisLink, WriteBehind, shared_key

REPORTS_KEY = shared_key("availability", "reports")  # group -> "<updated_at ms> <report JSON>"

# KEYS: the reports hash. ARGV: group, updated_at (ms), the report as JSON.
_REPORT = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and tonumber(string.match(old, '^(%d+)')) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
return 1
"""


class SharedBoard:
    """Writes this node's reports through to Redis; pulls the other nodes' into its board."""

    def __init__(self, link: RedisLink, writes: WriteBehind, board: AvailabilityBoard) -> None:
        self.link, self.writes, self.board = link, writes, board
        self._report = link.script(_REPORT)
        board.publish = self.publish

    def publish(self, group: str, state: GroupState) -> None:
        body = json.dumps(dataclasses.asdict(state), separators=(",", ":"))
        args = [group, state.updated_at, body]
        self.writes.spawn(self._write(args), f"availability-{group}")

    async def _write(self, args: list[object]) -> None:
        await self.link.run(self._report(keys=[REPORTS_KEY], args=args))

    async def pull(self) -> None:
        """Take every group's latest report (one round trip)."""
        flat: dict[bytes, bytes] = await self.link.run(
            self.link.client.hgetall(REPORTS_KEY)  # type: ignore[arg-type]
        )
        for group, value in flat.items():
            _, _, body = value.partition(b" ")
            self.board.take(group.decode(), GroupState(**json.loads(body)))
