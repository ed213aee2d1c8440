"""What pacing reasons about: a group's configuration, its capacity, what is in flight.

Plain dataclasses; the settings file and the availability feed are validated at the edge and
turned into these. Formulas are in ``algorithms.py`` and explained in docs/pacing.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

DEFAULT_GOAL_PCT = 3.0  # GWE's default optimizationGoal (abandonment 3 %)
DEFAULT_REFRESH_PERIOD_S = 2.0  # the queue of paced visitors is looked at again this often
DEFAULT_AVG_HANDLE_TIME_S = 300.0  # a web chat's usual length, until the feed says otherwise
PRIOR_ACCEPTANCE = 0.25  # acceptance rate assumed before a strategy has answers of its own
PRIOR_ANSWER_TIME_S = 10.0  # invitation to answer, assumed until answers are measured


class Algorithm(enum.StrEnum):
    SUPER_PROGRESSIVE = "SUPER_PROGRESSIVE"  # small groups: exact, counts only free slots
    SUPER_PROGRESSIVE_DUAL = "SUPER_PROGRESSIVE_DUAL"
    PREDICTIVE_B = "PREDICTIVE_B"  # large groups: also the slots freed while visitors answer
    PREDICTIVE_B_DUAL = "PREDICTIVE_B_DUAL"

    @property
    def dual(self) -> bool:
        return self.value.endswith("_DUAL")

    @property
    def predictive(self) -> bool:
        return self.value.startswith("PREDICTIVE_B")


class Target(enum.StrEnum):
    ABANDONEMENT_RATE = "ABANDONEMENT_RATE"  # GWE's spelling
    BUSY_FACTOR = "BUSY_FACTOR"


class Channel(enum.StrEnum):
    CHAT = "chat"
    WEBCALLBACK = "webcallback"


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """How one agent group is paced (the settings file's ``[pacing.groups.<name>]``)."""

    algorithm: Algorithm = Algorithm.SUPER_PROGRESSIVE
    target: Target = Target.ABANDONEMENT_RATE
    goal_pct: float = DEFAULT_GOAL_PCT
    refresh_period_s: float = DEFAULT_REFRESH_PERIOD_S
    proactive_ratio: float = 1.0  # _DUAL: share of the free capacity proactive traffic may use
    channel: Channel = Channel.CHAT
    chats_per_agent: int = 1  # when the feed does not say
    avg_handle_time_s: float = DEFAULT_AVG_HANDLE_TIME_S  # when the feed does not say

    @property
    def goal(self) -> float:
        return self.goal_pct / 100.0


@dataclass(frozen=True, slots=True)
class Capacity:
    """A group's agents as the feed last reported them, with the group's defaults filled in."""

    agents_ready: int  # signed in, able to take one more interaction
    agents_busy: int  # signed in, at full load (or in after-call work)
    chats_per_agent: int
    in_progress: int  # interactions agents are handling now
    queued: int  # interactions waiting in the group's queue (reactive ones included)
    avg_handle_time_s: float
    estimated_wait_s: float

    @property
    def slots(self) -> int:
        return (self.agents_ready + self.agents_busy) * self.chats_per_agent

    @property
    def free(self) -> int:
        return max(0, self.slots - self.in_progress - self.queued)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A learnt value: its smoothed mean and how many observations it rests on."""

    mean: float
    observations: float  # exponentially decayed count; below the prior's weight, the prior leads


@dataclass(frozen=True, slots=True)
class Pending:
    """Invitations of a group in flight, shared by every node (see counters.py)."""

    invited: tuple[float, ...] = ()  # acceptance probability of each unanswered invitation
    accepted: int = 0  # accepted, not yet connected to an agent
    version: int = 0  # changes whenever the group's pending set does (compare-and-set)

    @property
    def predicted_answers(self) -> float:
        """Expected acceptances still to come, plus those accepted and waiting."""
        return sum(self.invited) + self.accepted


@dataclass(frozen=True, slots=True)
class Plan:
    """One group's pacing picture at one moment (what `GET /api/v1/pacing` shows)."""

    group: str
    config: GroupConfig
    state: str  # "fresh", "stale" (treated as the setting says) or "unreported"
    open_without_limit: bool  # a stale or unreported group treated as open
    capacity: Capacity | None
    pending: Pending
    releases: float  # interactions expected to end while new invitations are answered
    room: float  # accepted invitations the group can take now (X in docs/pacing.md)
    acceptance: float
    answer_time_s: float
    allowed_now: int
    allowed_per_minute: float
    reactive_state: float
    queued_visitors: int = 0
    notes: list[str] = field(default_factory=list)
