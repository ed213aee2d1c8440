"""Who is calling: a key's (or sign-in's) name and role. Roles are ordered: an agent's routes are
open to supervisors, a supervisor's to admins."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    AGENT = "agent"  # live visitors, visit history, invite now, desktop links
    SUPERVISOR = "supervisor"  # and reports, strategies, pacing, availability, dry runs
    ADMIN = "admin"  # and everything that changes configuration, and the audit log

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """Whether this role may use a route that needs ``needed``."""
        return self.rank >= needed.rank


_RANKS = {Role.AGENT: 0, Role.SUPERVISOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Principal:
    """A key, a Basic user or a console session's owner, as the audit log names it."""

    name: str
    role: Role
