"""Identities: who a visit belongs to, kept across visits, browsers and devices.

GWE creates an identity on ``SignIn`` (scope ``Authenticated``) and keeps it after ``SignOut``
(scope ``Recognized``). Identity rows are written in the history's own transactions, so an
identity is as durable as the visit it came with.
"""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from .model import Event, Identity, Visit
from .store import Batch, Row

log = logging.getLogger(__name__)

# Where the identity's ID is read from, in order: GWE's own name, then the names sites and
# GWE's examples use (UserInfo carried `userID`); an e-mail or an account number.
IDENTITY_ID_KEYS = ("identityId", "userID", "userId", "email", "customerID")
IDENTITY_ID_MAX_CHARS = 200  # an e-mail address fits many times over
IDENTITY_EVENTS = frozenset({"SignIn", "UserInfo", "SignOut"})
_NAMED_KEYS = frozenset({"name", "firstName", "lastName", "location", "entityInCS"})


class VisitScope(enum.StrEnum):
    AUTHENTICATED = "Authenticated"
    RECOGNIZED = "Recognized"


@dataclass(frozen=True, slots=True)
class IdentityFacts:
    """What a SignIn or UserInfo said about the visitor."""

    identity_id: str
    name: str | None
    location: str | None
    entity_in_cs: str | None
    attributes: dict[str, Any]


def identity_id_of(data: dict[str, Any]) -> str | None:
    for key in IDENTITY_ID_KEYS:
        value = data.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value).strip()
            if text and len(text) <= IDENTITY_ID_MAX_CHARS and "/" not in text:
                return text
    return None


def facts_of(data: dict[str, Any]) -> IdentityFacts | None:
    """The identity a SignIn/UserInfo payload names, or None without an ID in it."""
    identity_id = identity_id_of(data)
    if identity_id is None:
        return None
    name = data.get("name")
    if not isinstance(name, str):
        parts = [data.get("firstName"), data.get("lastName")]
        name = " ".join(p for p in parts if isinstance(p, str) and p) or None
    location, entity = data.get("location"), data.get("entityInCS")
    return IdentityFacts(
        identity_id=identity_id,
        name=name,
        location=str(location) if location is not None else None,
        entity_in_cs=str(entity) if entity is not None else None,
        attributes={k: v for k, v in data.items() if k not in _NAMED_KEYS},
    )


def scope_of(visit: Visit) -> VisitScope:
    if visit.identity is Identity.AUTHENTICATED:
        return VisitScope.AUTHENTICATED
    return VisitScope.RECOGNIZED


class VisitLookup(Protocol):
    def get(self, visit_id: str) -> Visit | None: ...


UPSERT_IDENTITY = """
INSERT INTO identities VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (identity_id) DO UPDATE SET
    name = COALESCE(excluded.name, identities.name),
    location = COALESCE(excluded.location, identities.location),
    entity_in_cs = COALESCE(excluded.entity_in_cs, identities.entity_in_cs),
    visit_scope = excluded.visit_scope,
    attributes = json_patch(identities.attributes, excluded.attributes),
    updated_at = excluded.updated_at
"""
UPSERT_LINK = """
INSERT INTO identity_visits VALUES (?, ?, ?, ?, ?)
ON CONFLICT (identity_id, visit_id) DO UPDATE SET visit_scope = excluded.visit_scope
"""
PURGE: tuple[str, ...] = (
    "DELETE FROM identity_visits WHERE visit_id IN "
    "(SELECT visit_id FROM visits WHERE last_seen_at < ?)",
    "DELETE FROM identities WHERE updated_at < ? AND identity_id NOT IN "
    "(SELECT identity_id FROM identity_visits)",
)


class IdentityBook:
    """Ingest listener that keeps identities and their visits (a history ``RowSource``)."""

    purge: tuple[str, ...] = PURGE

    def __init__(self, visits: VisitLookup) -> None:
        self.visits = visits
        self._identities: dict[str, Row] = {}
        self._links: dict[tuple[str, str], Row] = {}
        self._retry: Batch = []

    @property
    def pending(self) -> int:
        return len(self._identities) + len(self._links) + len(self._retry)

    def on_events(self, events: list[Event]) -> None:
        for event in events:
            if event.event_name not in IDENTITY_EVENTS:
                continue
            visit = self.visits.get(event.visit_id)
            if visit is None:
                continue
            facts = facts_of(visit.user_info)
            if facts is not None:
                self._record(visit, facts, event)

    def _record(self, visit: Visit, facts: IdentityFacts, event: Event) -> None:
        scope = scope_of(visit).value
        now = event.server_time
        self._identities[facts.identity_id] = (
            facts.identity_id,
            facts.name,
            facts.location,
            facts.entity_in_cs,
            scope,
            json.dumps(facts.attributes),
            now,
            now,
        )
        key = (facts.identity_id, visit.visit_id)
        self._links[key] = (*key, visit.global_visit_id, visit.started_at, scope)
        log.debug(
            "visit %s is %s as %s", visit.visit_id, scope, facts.identity_id,
            extra={"visitID": visit.visit_id},
        )  # fmt: skip

    def take(self) -> Batch:
        batch = self._retry + [
            (UPSERT_IDENTITY, list(self._identities.values())),
            (UPSERT_LINK, list(self._links.values())),
        ]
        self._retry, self._identities, self._links = [], {}, {}
        return [(statement, rows) for statement, rows in batch if rows]

    def put_back(self, batch: Batch) -> None:
        self._retry = batch + self._retry
