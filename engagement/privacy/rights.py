"""A visitor's rights: everything the engine holds about them, exported or erased.

A visitor is named by a globalVisitID (one browser) or an identityId (a person who signed in
or said who they are, on any browser). By identity, the visitor is every browser that
identity used: its visits, then every visit of those browsers (the anonymous ones before the
sign-in too). An identity row goes with the visits when nothing else links to it.

Stored rows are read and deleted through two store methods (``rows_where`` and
``delete_where``, plain SQL that PostgreSQL runs too); live state goes through one small
method per in-memory part (the registry, the attempts' owner, the push hub, the limiter, the
link tokens). Erasure is complete on this node when the call returns.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..lifecycle.owner import Lifecycle
from ..monitoring.ingest import Ingestor, now_ms
from ..notifications.hub import PushHub
from ..throttle import ForgetsKeys, RateLimiter
from ..visits.identity import identity_id_of
from ..visits.registry import VisitRegistry
from .cluster import SharedErasure
from .links import LinkTokens

log = logging.getLogger(__name__)

# Every table holding a visitor's data, and the column naming them.
BY_VISIT = ("visits", "pages", "events", "attempts", "conversions", "identity_visits",
            "push_messages", "callbacks")  # fmt: skip
BY_VISITOR = ("chat_sessions",)  # by globalVisitID
BY_IDENTITY = ("identities",)
TABLES = BY_VISIT + BY_VISITOR + BY_IDENTITY
# Limits that count a visitor (api.throttling): keyed by globalVisitID (or visitID).
VISITOR_LIMITS = ("callback_visitor", "chat_visitor")
Keys = Mapping[str, tuple[str, Sequence[str]]]


class VisitorRecords(Protocol):
    """What a store offers for a visitor's rights (SQLite here, PostgreSQL alike)."""

    async def rows_where(self, keys: Keys) -> dict[str, list[dict[str, Any]]]: ...

    async def delete_where(self, keys: Keys) -> dict[str, int]: ...


@dataclass(slots=True)
class Subject:
    """Who a request is about, resolved to every key the stores use."""

    global_visit_ids: list[str] = field(default_factory=list)
    visit_ids: list[str] = field(default_factory=list)
    identity_ids: list[str] = field(default_factory=list)

    def keys(self) -> dict[str, tuple[str, Sequence[str]]]:
        keys: dict[str, tuple[str, Sequence[str]]] = {
            t: ("visit_id", self.visit_ids) for t in BY_VISIT
        }
        keys |= {t: ("global_visit_id", self.global_visit_ids) for t in BY_VISITOR}
        keys |= {t: ("identity_id", self.identity_ids) for t in BY_IDENTITY}
        return keys

    def as_json(self) -> dict[str, list[str]]:
        return {"globalVisitIDs": self.global_visit_ids, "visitIDs": self.visit_ids,
                "identityIds": self.identity_ids}  # fmt: skip

    @property
    def empty(self) -> bool:
        return not (self.global_visit_ids or self.visit_ids or self.identity_ids)


def _column(rows: Iterable[dict[str, Any]], name: str) -> list[str]:
    return list(dict.fromkeys(str(r[name]) for r in rows))


def _readable(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as JSON: JSON text decoded, bytes as text."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, bytes | bytearray | memoryview):
            value = bytes(value).decode("utf-8", "replace")
        if isinstance(value, str) and value[:1] in ("{", "["):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        out[key] = value
    return out


class VisitorRights:
    def __init__(
        self,
        records: VisitorRecords,
        registry: VisitRegistry,
        lifecycle: Lifecycle,
        hub: PushHub,
        ingestor: Ingestor,
        limiter: RateLimiter,
        links: LinkTokens,
        refuse_for_s: float,
    ) -> None:
        self.records = records
        self.registry = registry
        self.lifecycle = lifecycle
        self.hub = hub
        self.ingestor = ingestor
        self.limiter = limiter
        self.links = links
        self.refuse_for_ms = int(refuse_for_s * 1000)  # a tab still open keeps sending a while
        self.shared: SharedErasure | None = None  # with redis_url: keys in Redis, other nodes
        self.forget_shared: Callable[[str], None] | None = None  # the node's shared-log view

    async def find(
        self, global_visit_ids: Sequence[str] = (), identity_ids: Sequence[str] = ()
    ) -> Subject:
        """Every visit, browser and identity the request reaches (see the module's doc)."""
        identities = list(dict.fromkeys(identity_ids))
        gvids = list(dict.fromkeys(global_visit_ids))
        if identities:
            found = await self.records.rows_where({"identity_visits": ("identity_id", identities)})
            gvids += [g for g in _column(found["identity_visits"], "global_visit_id")
                      if g not in gvids]  # fmt: skip
        visits = await self.records.rows_where({"visits": ("global_visit_id", gvids)})
        visit_ids = _column(visits["visits"], "visit_id")
        visit_ids += [v.visit_id for v in self.registry if v.global_visit_id in gvids]
        if identities:
            linked = await self.records.rows_where({"identity_visits": ("identity_id", identities)})
            visit_ids += _column(linked["identity_visits"], "visit_id")
        visit_ids = list(dict.fromkeys(visit_ids))
        identities += [i for i in await self._orphaned(visit_ids) if i not in identities]
        return Subject(gvids, visit_ids, identities)

    async def _orphaned(self, visit_ids: list[str]) -> list[str]:
        """Identities linked to these visits and to no other visit."""
        linked = await self.records.rows_where({"identity_visits": ("visit_id", visit_ids)})
        ids = _column(linked["identity_visits"], "identity_id")
        every = await self.records.rows_where({"identity_visits": ("identity_id", ids)})
        mine = set(visit_ids)
        others = {r["identity_id"] for r in every["identity_visits"] if r["visit_id"] not in mine}
        return [i for i in ids if i not in others]

    def _limit_keys(self, subject: Subject, numbers: Iterable[str]) -> list[str]:
        people = subject.global_visit_ids + subject.visit_ids
        keys = [f"{limit}:{p}" for limit in VISITOR_LIMITS for p in people]
        return keys + [f"callback_number:{n}" for n in numbers]

    async def export(self, subject: Subject) -> dict[str, Any]:
        """Everything held about the subject: stored rows per table, and live state."""
        stored = await self.records.rows_where(subject.keys())
        numbers = _numbers(stored.get("callbacks", []))
        live = [v for v in (self.registry.get(i) for i in subject.visit_ids) if v is not None]
        now = now_ms()
        counted: list[str] = []
        if isinstance(self.limiter, ForgetsKeys):
            counted = await self.limiter.counted(self._limit_keys(subject, numbers))
        mine = set(subject.visit_ids)
        buffers = {v: await self.hub.buffered(v) for v in subject.visit_ids}
        redis = (
            await self.shared.keys_of(subject.visit_ids, subject.global_visit_ids)
            if self.shared is not None
            else []
        )
        tokens = await self.links.of_visits(subject.visit_ids)
        return {
            "subject": subject.as_json(),
            "exportedAt": now,
            "stored": {t: [_readable(r) for r in rows] for t, rows in stored.items()},
            "live": {
                "visits": [
                    {**v.summary(now), "userInfo": v.user_info,
                     "heldBack": [list(h) for h in v.held_back or []]}
                    for v in live
                ],
                "attempts": [
                    a.as_json() for a in self.lifecycle.by_id.values() if a.visit_id in mine
                ],
                "pushBuffers": {
                    visit_id: [{"id": m.id, "pageID": m.page_id, "channel": m.channel,
                                "data": m.data, "createdAt": m.created_ms}
                               for m in messages]
                    for visit_id, messages in buffers.items() if messages
                },
                "counters": counted,
                "linkTokens": tokens,
                "redisKeys": redis,
            },
        }  # fmt: skip

    async def erase(self, subject: Subject) -> dict[str, Any]:
        """Delete everything held about the subject, live state first (so nothing is queued
        again), then every stored row; what was removed, counted."""
        started = now_ms()
        known = self._live_identities(subject.visit_ids)
        here = await self.forget_here(subject.visit_ids, subject.global_visit_ids)
        callbacks = await self.records.rows_where({"callbacks": ("visit_id", subject.visit_ids)})
        counters = 0
        if isinstance(self.limiter, ForgetsKeys):
            keys = self._limit_keys(subject, _numbers(callbacks["callbacks"]))
            counters = await self.limiter.forget(keys)
        deleted = await self.records.delete_where(subject.keys())
        deleted["identities"] += await self._drop_unlinked(known, subject.identity_ids)
        if self.shared is not None:  # after the rows: a node told to forget finds none left
            here["redisKeys"] = await self.shared.erase(subject.as_json())
        done = now_ms()
        log.info(
            "erased visitor: %d visits, %d rows, %d live visits in %d ms",
            len(subject.visit_ids), sum(deleted.values()), here["visits"], done - started,
        )  # fmt: skip
        return {
            "subject": subject.as_json(),
            "deleted": deleted,
            "live": {**here, "counters": counters},
            "completedAt": done,
        }  # fmt: skip

    async def told(self, word: dict[str, list[str]]) -> None:
        """Another node erased this subject: its live state leaves this node too, and the rows
        this node had queued for it (written first) are deleted again."""
        subject = Subject(word["globalVisitIDs"], word["visitIDs"], word["identityIds"])
        gvids, named = set(subject.global_visit_ids), set(subject.visit_ids)
        subject.visit_ids += [  # a visit started here may have had no row when it was erased
            v.visit_id
            for v in self.registry
            if v.global_visit_id in gvids and v.visit_id not in named
        ]
        known = self._live_identities(subject.visit_ids)
        await self.forget_here(subject.visit_ids, subject.global_visit_ids)
        orphans = await self._orphaned(subject.visit_ids)  # identities it had queued for them
        subject.identity_ids += [i for i in orphans if i not in subject.identity_ids]
        await self.records.delete_where(subject.keys())
        await self._drop_unlinked(known, subject.identity_ids)
        if self.shared is not None:  # what this node wrote for them before it was told
            await self.shared.sweep(subject.as_json())

    def _live_identities(self, visit_ids: Iterable[str]) -> list[str]:
        """The identities the live visits name now. The stored links may not show them yet:
        another node writes what it queued on its own clock, possibly after the erasing node
        read the links and before it deleted them (the identity row would stay behind)."""
        found = (self.registry.get(v) for v in visit_ids)
        ids = (identity_id_of(v.user_info) for v in found if v is not None)
        return list(dict.fromkeys(i for i in ids if i is not None))

    async def _drop_unlinked(self, identity_ids: list[str], deleted: Sequence[str]) -> int:
        """Delete those of ``identity_ids`` (not deleted already) no visit links to any more."""
        ids = [i for i in identity_ids if i not in deleted]
        if not ids:
            return 0
        linked = await self.records.rows_where({"identity_visits": ("identity_id", ids)})
        still = set(_column(linked["identity_visits"], "identity_id"))
        unlinked = [i for i in ids if i not in still]
        if not unlinked:
            return 0
        gone = await self.records.delete_where({"identities": ("identity_id", unlinked)})
        return gone["identities"]

    async def forget_here(
        self, visit_ids: list[str], global_visit_ids: list[str]
    ) -> dict[str, int]:
        """The visitor's live state leaves this node's memory: their visits (and events still
        arriving for them), attempts, push streams and link tokens. Counts."""
        self.ingestor.refuse_visits(visit_ids, now_ms() + self.refuse_for_ms)
        live = [v for v in visit_ids if self.registry.get(v) is not None]
        for visit_id in visit_ids:
            if self.forget_shared is not None:
                self.forget_shared(visit_id)  # this node's view of the shared log, and the visit
            self.registry.forget(visit_id)
        attempts = self.lifecycle.forget_visitor(visit_ids, global_visit_ids)
        streams = sum([await self.hub.forget(v) for v in visit_ids])
        tokens = await self.links.forget_visits(visit_ids)
        return {"visits": len(live), "attempts": attempts, "streams": streams,
                "linkTokens": tokens}  # fmt: skip


def _numbers(callbacks: Iterable[dict[str, Any]]) -> list[str]:
    """The phone numbers of the visitor's callback requests (a limit counts per number)."""
    numbers = []
    for row in callbacks:
        try:
            number = json.loads(row["form"]).get("_customer_number")
        except (ValueError, AttributeError, KeyError, TypeError):
            continue
        if isinstance(number, str):
            numbers.append(number)
    return numbers
