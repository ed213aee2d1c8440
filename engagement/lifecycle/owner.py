"""The one owner of an attempt's life: decides, offers, and moves attempts to their end.

Every change of an attempt's state goes through an intent method here (``decide``, ``start``,
``offer``, ``page_reported``, ``accept``, ``launched``, ``failed``, ``completed``, ``cancel``,
``expire``); the edges call them explicitly. The path of an event, from the monitoring handler
to the push: ``Ingestor.ingest`` -> ``Lifecycle.decide`` -> ``Lifecycle.start`` ->
``Lifecycle.offer`` -> ``PushHub.publish``. Time comes from the injected ``clock`` (ms), so
tests drive it; ``tick`` is the timer (dues of strategies, then deadlines of attempts).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import Counter
from collections.abc import Callable, Collection, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from .. import constants as C
from ..attempts import Attempt, Origin, State, new_attempt_id
from ..experiments.goals import GoalWindows
from ..experiments.model import Conversion
from ..launchers.base import Launcher
from ..launchers.handoff import page_handoff
from ..pacing.pacer import Pacer
from ..settings import UserData
from ..strategy.engine import STRICT_MODE, CompiledStrategy, Engine
from ..strategy.experiment import arm_of
from ..visits.model import Event, Visit
from ..visits.registry import VisitRegistry
from .transitions import SIGNS_OF_LIFE, PageCode, page_moves

log = logging.getLogger(__name__)

Clock = Callable[[], int]  # engine ms
Spawn = Callable[[Coroutine[Any, Any, None], str], None]  # run in the background, awaited at stop
CATCH_UP_RETRIES = 5  # an attempt another node offered, looked for this often ...
CATCH_UP_RETRY_S = 0.02  # ... this far apart (its write to Redis is on its way)
INVITE_CHANNEL = "gpe.invite"
CLOSE_INVITE_CHANNEL = "gpe.closeInvite"
QUEUED_AT = "queuedAt"  # in an attempt's handoff: when its request was queued (see ``queued``)


class AttemptStore(Protocol):
    def record_attempt(self, attempt: Attempt) -> None:
        """Queue the record for the next batched write."""

    async def write_attempt(self, attempt: Attempt) -> None:
        """Write the record now (committed when this returns)."""

    async def shared(self, attempt: Attempt) -> None:
        """Return once every node reads the attempt as it is now (one node: at once)."""


class Pusher(Protocol):
    def publish(
        self, visit_id: str, page_id: str | None, channel: str, data: dict[str, Any], now_ms: int
    ) -> Any: ...


class Announcer(Protocol):
    """An outside decision-maker told of attempts of ``decide: external`` strategies."""

    async def announce(self, attempt: Attempt, visit: Visit) -> None: ...


class LiveClaims(Protocol):
    """Several nodes: strict mode's one live attempt per visit, across them. A claim lasts
    until the attempt's current deadline (its server-side end), so it never holds a visit for
    ever, even when the node that made it is gone."""

    async def claim(self, visit_id: str, attempt_id: str, until_ms: int) -> bool:
        """Take the visit for this attempt, unless another attempt holds it."""

    def hold(self, attempt: Attempt, until_ms: int) -> None:
        """The attempt lives on in its state until ``until_ms``: its claim lasts as long, and
        then whichever node is alive expires it, unless it moved on (the shared deadline).
        Written behind: nothing waits for it."""

    def release(self, visit_id: str, attempt_id: str) -> None:
        """The attempt ended: the visit is free (if this attempt still held it). Written
        behind."""


class SharedVisitLog(Protocol):
    async def visit(self, visit_id: str) -> Visit | None:
        """The visit (and its attempts) with everything other nodes logged applied."""


class Conflict(Exception):
    """What was asked contradicts what already happened (declined after accepted, say)."""

    def __init__(self, attempt: Attempt, what: str) -> None:
        super().__init__(f"attempt {attempt.attempt_id} is {attempt.state.value}; cannot be {what}")
        self.attempt = attempt


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long each live state may last before the owner ends it (seconds)."""

    detected_s: float = C.ENGAGEMENT_EXPIRATION_S  # not offered by then: timed out
    offered_s: float = C.ENGAGEMENT_EXPIRATION_S  # offered, never shown nor answered
    accepted_s: float = C.ACCEPTED_EXPIRATION_S  # accepted, never launched: failed
    launched_s: float = C.CHAT_MAX_DURATION_S  # launched, no news of its end: completed
    queued_s: float = C.CALLBACK_QUEUED_S  # accepted, its request queued (GMS down): failed
    form_s: float = C.REGISTRATION_FORM_EXPIRATION_S  # the visitor fills the invitation's form
    shown_grace_s: float = C.SHOWN_GRACE_S  # after the page's own timeout of a shown invitation


class Lifecycle:
    def __init__(
        self,
        registry: VisitRegistry,
        engine: Engine,
        store: AttemptStore,
        push: Pusher,
        clock: Clock,
        spawn: Spawn,
        timeouts: Timeouts | None = None,
        goals: GoalWindows | None = None,
    ) -> None:
        self.registry = registry
        self.engine = engine
        self.store = store
        self.push = push
        self.clock = clock
        self.spawn = spawn
        self.timeouts = timeouts or Timeouts()
        self.goals = goals if goals is not None else GoalWindows(_NoConversions())
        self.launchers: dict[str, Launcher] = {}  # media -> its launcher (see launchers/)
        self.announcer: Announcer | None = None  # set when decision_webhook_url is
        self.pacer: Pacer | None = None  # strategies naming an agent group are paced by it
        self.paced_wait_s: float = C.PACED_WAIT_S
        self.user_data = UserData()  # what of the visit a chat's page attaches (settings)
        self.claims: LiveClaims | None = None  # several nodes: strict mode across them
        self.shared: SharedVisitLog | None = None  # several nodes: visits caught up from Redis
        self.by_id: dict[str, Attempt] = {}  # attempts still live, and recently ended ones
        self._deadlines: list[tuple[int, int, Attempt, State]] = []
        self._deadline_of: dict[str, int] = {}  # attempt -> seq of its current deadline
        self._seq = itertools.count()
        self.started_total = 0
        self.reached: Counter[str] = Counter()  # attempts that reached each state, for metrics

    # -- deciding --

    def decide(self, events: list[Event]) -> list[Attempt]:
        """After ingest: which visit these events make a strategy invite, and start it."""
        # Step 2: gates that may still hold it back go in ``start`` (pacing, experiments...).
        return [self.start(visit, chosen, now) for visit, chosen, now in self._choices(events)]

    async def decide_shared(self, events: list[Event]) -> list[Attempt]:
        """``decide`` for one of several nodes: the attempt a strategy starts must first claim
        its visit across them (strict mode)."""
        started = []
        for visit, chosen, now in self._choices(events):
            attempt = await self.start_claimed(visit, chosen, now)
            if attempt is not None:
                started.append(attempt)
        return started

    def _choices(self, events: list[Event]) -> Iterator[tuple[Visit, CompiledStrategy, int]]:
        """Step 1 of deciding, one visit at a time as the caller goes on: the strategy the
        engine picks for each visit of these events (its first whose conditions and limits
        hold)."""
        # Goals first: a goal event in the batch that qualifies a visit came before its invitation.
        self.goals.on_events(events)
        if not len(self.engine.strategies):
            return
        now = self.clock()
        by_visit: dict[str, list[Event]] = {}
        for event in events:
            by_visit.setdefault(event.visit_id, []).append(event)
        for visit_id, visit_events in by_visit.items():
            visit = self.registry.get(visit_id)
            if visit is None:
                continue
            chosen = self.engine.on_events(visit, visit_events, now)
            if chosen is not None:
                yield visit, chosen, now

    async def start_due(
        self, visit: Visit, strategies: list[CompiledStrategy], now: int
    ) -> Attempt | None:
        """Several nodes: this node claimed the due time of these strategies for the visit."""
        chosen = self.engine.decide_due(visit, strategies, now)
        return None if chosen is None else await self.start_claimed(visit, chosen, now)

    async def start_claimed(
        self, visit: Visit, strategy: CompiledStrategy, now: int
    ) -> Attempt | None:
        """``start``, once the visit is claimed for the new attempt across the nodes."""
        claims = self.claims
        if claims is None or not self.engine.strict:
            return self.start(visit, strategy, now)
        attempt_id = new_attempt_id()
        until = now + _ms(self.timeouts.detected_s)
        if not await claims.claim(visit.visit_id, attempt_id, until):
            visit.hold_back(now, strategy.name, STRICT_MODE)
            return None
        if self.engine.busy(visit):  # this node started one while the claim was on its way
            claims.release(visit.visit_id, attempt_id)
            return None
        attempt = self.start(visit, strategy, now, attempt_id)
        if not attempt.live:  # held out: it takes no claim
            claims.release(visit.visit_id, attempt_id)
        return attempt

    async def add_claimed(self, visit: Visit, attempt: Attempt) -> bool:
        """``add`` an attempt an agent or an outside system asked for, once the visit is
        claimed for it across the nodes (strict mode); False if another attempt holds it."""
        claims = self.claims
        if claims is not None and self.engine.strict:
            until = attempt.created_at + _ms(self.timeouts.detected_s)
            if not await claims.claim(visit.visit_id, attempt.attempt_id, until):
                return False
            if self.engine.busy(visit):  # this node started one while the claim was on its way
                claims.release(visit.visit_id, attempt.attempt_id)
                return False
        self.add(visit, attempt)
        return True

    def tick(self, now: int | None = None) -> None:
        """The timer: strategies whose conditions ripened, then attempts past a deadline."""
        now = self.clock() if now is None else now
        for visit, chosen in self.engine.on_due(now, self.registry):
            self.start(visit, chosen, now)
        self.expire_due(now)

    def expire_due(self, now: int) -> None:
        """Attempts past a deadline end."""
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            _, seq, attempt, expected = heapq.heappop(heap)
            if self._deadline_of.get(attempt.attempt_id) != seq:
                continue  # replaced by a later deadline
            del self._deadline_of[attempt.attempt_id]
            if attempt.state is expected:
                self.expire(attempt, now)

    def start(
        self, visit: Visit, strategy: CompiledStrategy, now: int, attempt_id: str | None = None
    ) -> Attempt:
        """A strategy decided: a new attempt, offered now unless an outside system decides."""
        # Experiments decide first: the control group is recorded and shown nothing, and a
        # variant's offer replaces the strategy's (engagement.strategy.experiment).
        assignment = arm_of(strategy, visit.global_visit_id)
        offer = assignment.offer
        attempt = self.new_attempt(
            visit, strategy.name, Origin.STRATEGY, offer.invite, offer.media, dict(offer.params),
            offer.timeout_s, now, attempt_id,
        )  # fmt: skip
        attempt.variant = assignment.variant
        if strategy.experiment is not None and strategy.experiment.goal is not None:
            self.goals.open(attempt, strategy.experiment.goal)
        if assignment.held_out:
            self.hold_out(visit, attempt, now)
            return attempt
        external = strategy.decide == "external"  # engage / noengage answer before the expiry
        if not external and self.pacer is not None and strategy.availability is not None:
            self.add(visit, attempt, offer=False)
            self.pace(attempt, strategy, now)
            return attempt
        self.add(visit, attempt, offer=not external)
        if external and self.announcer is not None:
            self.spawn(self.announcer.announce(attempt, visit), f"announce-{attempt.attempt_id}")
        return attempt

    def new_attempt(
        self,
        visit: Visit,
        strategy: str,
        origin: Origin,
        invite: str,
        media: str,
        params: dict[str, Any],
        timeout_s: float,
        now: int | None = None,
        attempt_id: str | None = None,
    ) -> Attempt:
        """A new attempt on the page the visitor is on now (not yet recorded: see ``add``)."""
        page = visit.current_page
        return Attempt(
            attempt_id=attempt_id or new_attempt_id(), visit_id=visit.visit_id,
            global_visit_id=visit.global_visit_id, page_id=page.page_id if page else "",
            strategy=strategy, origin=origin, invite=invite, media=media, params=params,
            timeout_s=timeout_s, created_at=self.clock() if now is None else now,
        )  # fmt: skip

    def _record(self, visit: Visit, attempt: Attempt) -> None:
        """A new attempt joins its visit, the index, the ledger and the store."""
        visit.attempts.append(attempt)
        self.registry.mark_changed(visit)
        self.by_id[attempt.attempt_id] = attempt
        self.engine.ledger.add(attempt)
        self.store.record_attempt(attempt)
        self.started_total += 1

    def hold_out(self, visit: Visit, attempt: Attempt, now: int) -> None:
        """Record a control-group attempt: it counts for limits and goals, and is never offered
        (so it takes no pacing capacity and no timer)."""
        attempt.move(State.HELD_OUT, now, "control group")
        self._record(visit, attempt)
        self.reached[State.DETECTED.value] += 1
        self.reached[State.HELD_OUT.value] += 1
        log.info(
            "attempt %s for visit %s by %s held out", attempt.attempt_id, visit.visit_id,
            attempt.strategy, extra={"visitID": visit.visit_id, "attemptID": attempt.attempt_id},
        )  # fmt: skip

    def add(self, visit: Visit, attempt: Attempt, offer: bool = True) -> Attempt:
        """Record a new attempt and, unless an outside system decides, offer it."""
        self._record(visit, attempt)
        self.reached[attempt.state.value] += 1
        log.info(
            "attempt %s for visit %s by %s (%s)",
            attempt.attempt_id, visit.visit_id, attempt.strategy, attempt.media,
            extra={"visitID": visit.visit_id, "attemptID": attempt.attempt_id},
        )  # fmt: skip
        self._expect(attempt, attempt.created_at + _ms(self.timeouts.detected_s))
        if offer:
            self.offer(attempt, visit)
        return attempt

    # -- pacing (docs/pacing.md) --

    def pace(self, attempt: Attempt, strategy: CompiledStrategy, now: int) -> None:
        """Invite now if the strategy's agent group has room; otherwise the attempt waits in
        the group's line, recorded as paced, until room comes or ``paced_wait_s`` passes."""
        assert self.pacer is not None
        assert strategy.availability is not None
        av = strategy.availability
        released = self.pacer.admit(
            attempt, av.group, strategy.priority, now, av.min_ready, av.max_wait_s
        )
        if attempt not in released:
            waiting = self.pacer.waiting(av.group)
            reason = f"group {av.group} has no room ({waiting} in line)"
            self._move(attempt, State.PACED, now, reason)
            self._expect(attempt, now + _ms(self.paced_wait_s))
        self.offer_released(released, now)

    def pace_lines(self, now: int) -> int:
        """Invite whoever the groups' lines let through now (the scheduled job)."""
        if self.pacer is None:
            return 0
        released = self.pacer.refresh(now)
        self.offer_released(released, now)
        return len(released)

    def offer_released(self, attempts: list[Attempt], now: int) -> None:
        for attempt in attempts:
            visit = self.registry.get(attempt.visit_id)
            if visit is None:
                self._move(attempt, State.TIMED_OUT, now, "the visit ended while paced")
            else:
                self.offer(attempt, visit)

    # -- intents --

    def offer(self, attempt: Attempt, visit: Visit) -> None:
        """Push the invitation to the visit's pages: the one the visitor uses shows it."""
        now = self.clock()
        data = {
            "attemptID": attempt.attempt_id,
            "url": f"/invites/{attempt.attempt_id}.html?visitID={visit.visit_id}",
            "media": attempt.media,
            "timeoutS": attempt.timeout_s,
            "params": attempt.params,
        }
        if attempt.media == "chat":  # the page opens the chat: it attaches these itself
            data.update(page_handoff(visit, self.user_data))
        self.push.publish(visit.visit_id, None, INVITE_CHANNEL, data, now)
        self._move(attempt, State.OFFERED, now, "")
        self._expect(attempt, now + _ms(self.timeouts.offered_s))

    async def page_reported(self, attempt: Attempt, code: PageCode) -> None:
        """Apply what the page reports (see ``transitions.PAGE_MOVES``); repeats change
        nothing. An acceptance is written to history before this returns, and every node
        reads the attempt's new state by then."""
        now = self.clock()
        found = page_moves(attempt.state, code)
        if found is None:
            raise Conflict(attempt, code.value)
        path, reason = found
        if code is PageCode.AGENT_CONNECTED and attempt.live:
            attempt.handoff["agentConnectedAt"] = now
            self.store.record_attempt(attempt)
        if code is PageCode.INTERACTING and attempt.state in (State.OFFERED, State.SHOWN):
            self._expect(attempt, now + _ms(self.timeouts.form_s))
        for state in path:
            why = reason if state is path[-1] else f"implied by {code}"
            if state is State.ACCEPTED:
                await self.accept(attempt, why)
            elif state is State.LAUNCHED:
                self.launched(attempt, why)
            else:
                self._move(attempt, state, now, why)
        if code in SIGNS_OF_LIFE and attempt.state is State.LAUNCHED:
            self._expect(attempt, now + _ms(self.timeouts.launched_s))
        if path == (State.SHOWN,):
            self._expect(attempt, now + _ms(attempt.timeout_s + self.timeouts.shown_grace_s))
        # The page's next report may reach another node: it must find this one there.
        await self.store.shared(attempt)

    async def accept(self, attempt: Attempt, reason: str) -> None:
        """The visitor said yes: written to history, the invitation leaves every tab, and the
        medium's launcher takes over. Accepting twice changes nothing."""
        if attempt.state is State.ACCEPTED:
            return
        if not attempt.can_move(State.ACCEPTED):
            raise Conflict(attempt, State.ACCEPTED.value)
        now = self.clock()
        self._move(attempt, State.ACCEPTED, now, reason, close=False)
        await self.store.write_attempt(attempt)  # kept, whatever happens next, before "yes"
        self._close_invite(attempt, now)
        self._expect(attempt, now + _ms(self.timeouts.accepted_s))
        launcher = self.launchers.get(attempt.media)
        if launcher is not None:
            self.spawn(launcher.accepted(attempt), f"launch-{attempt.attempt_id}")

    def launched(self, attempt: Attempt, reason: str) -> None:
        """The medium started (a chat opened, a webhook took it): it has its own deadline."""
        if attempt.state is State.LAUNCHED:
            return
        now = self.clock()
        self._move(attempt, State.LAUNCHED, now, reason)
        self._expect(attempt, now + _ms(self.timeouts.launched_s))

    def queued(self, attempt: Attempt, **handoff: Any) -> None:
        """The medium stored the request to deliver it later (a callback in the outbox, retried
        while GMS is down): recorded, and the accepted attempt waits for that delivery's answer
        (``queued_s``, past the outbox's own give-up) instead of ``accepted_s``."""
        now = self.clock()
        self.record(attempt, **handoff, **{QUEUED_AT: now})
        if attempt.state is State.ACCEPTED:
            self._expect(attempt, now + _ms(self.timeouts.queued_s))

    def failed(self, attempt: Attempt, reason: str) -> None:
        self._move(attempt, State.FAILED, self.clock(), reason)

    def completed(self, attempt: Attempt, reason: str) -> None:
        """The medium reached its end (a chat ended, GMS took a callback)."""
        if attempt.state is State.COMPLETED:
            return
        self._move(attempt, State.COMPLETED, self.clock(), reason)

    def cancel(self, attempt: Attempt, reason: str) -> None:
        """An outside decision-maker withdrew it (noengage). Cancelling twice changes nothing."""
        if attempt.state is State.CANCELLED:
            return
        self._move(attempt, State.CANCELLED, self.clock(), reason)

    def expire(self, attempt: Attempt, now: int | None = None) -> None:
        """A live attempt past its deadline ends: unanswered, never launched, or silent."""
        now = self.clock() if now is None else now
        state = attempt.state
        if state is State.ACCEPTED and QUEUED_AT in attempt.handoff:
            seconds = self.timeouts.queued_s
            self._move(attempt, State.FAILED, now, f"queued, never delivered in {seconds:g} s")
        elif state is State.ACCEPTED:
            seconds = self.timeouts.accepted_s
            self._move(attempt, State.FAILED, now, f"accepted, never launched in {seconds:g} s")
        elif state is State.LAUNCHED:
            seconds = self.timeouts.launched_s
            self._move(attempt, State.COMPLETED, now, f"no news of its end in {seconds:g} s")
        elif attempt.live:
            self._move(attempt, State.TIMED_OUT, now, f"no answer while {state.value}")

    def record(self, attempt: Attempt, **handoff: Any) -> None:
        """What the medium said (GMS ids, request ids): kept on the attempt, written."""
        attempt.handoff.update(handoff)
        self.store.record_attempt(attempt)

    # -- several nodes --

    async def catch_up(self, visit_id: str, attempt_id: str | None = None) -> None:
        """Several nodes: bring this node's copy of the visit and its attempts up to date
        (what other nodes logged and moved) before acting on them; nothing on one node.
        With ``attempt_id``, an attempt not found yet is waited for a little: the page may
        answer an invitation before the node that offered it has written it to Redis."""
        if self.shared is None:
            return
        await self.shared.visit(visit_id)
        for _ in range(CATCH_UP_RETRIES if attempt_id else 0):
            if self.find(attempt_id or "", visit_id) is not None:
                return
            await asyncio.sleep(CATCH_UP_RETRY_S)
            await self.shared.visit(visit_id)

    def rearm(self, visit: Visit) -> None:
        """Several nodes: the shared state of this visit was lost (Redis restarted empty):
        its live attempts get their claim and deadline again, counted from now."""
        now = self.clock()
        for attempt in visit.attempts:
            if attempt.live:
                self._expect(attempt, now + _ms(self._timeout_of(attempt)))

    def adopt(self, copy: Attempt) -> Attempt:
        """Several nodes: another node recorded or moved this attempt; this node's copy
        follows (never backwards: a copy with fewer transitions is older). This node's copy."""
        mine = self.by_id.get(copy.attempt_id)
        if mine is None:
            mine = self.by_id[copy.attempt_id] = copy
            self.engine.ledger.add(copy)
            strategy = self.engine.strategies.by_name.get(copy.strategy)
            goal = strategy.experiment.goal if strategy and strategy.experiment else None
            if goal is not None and copy.created_at + goal.within_ms > self.clock():
                self.goals.open(copy, goal)  # goal events logged here count for it too
        elif len(copy.transitions) >= len(mine.transitions):
            mine.state, mine.transitions = copy.state, copy.transitions
            mine.handoff, mine.variant = copy.handoff, copy.variant
        visit = self.registry.get(copy.visit_id)
        if visit is not None:
            if mine not in visit.attempts:  # new here, or the visit was rebuilt from its log
                visit.attempts.append(mine)
                visit.attempts.sort(key=lambda a: a.created_at)
            self.registry.mark_changed(visit)
        return mine

    # -- lookups and memory --

    def find(self, attempt_id: str, visit_id: str) -> Attempt | None:
        """An attempt of this visit (another visit cannot touch it)."""
        attempt = self.by_id.get(attempt_id)
        return attempt if attempt is not None and attempt.visit_id == visit_id else None

    def load_ledger(self, attempts: Iterable[Attempt]) -> None:
        """Attempts from history (at start): limits and cool-downs read them; the live ones
        get deadlines again, so none outlives a restart."""
        now = self.clock()
        for attempt in attempts:
            self.engine.ledger.add(attempt)
            self.by_id[attempt.attempt_id] = attempt
            if attempt.live:
                self._expect(attempt, now + _ms(self._timeout_of(attempt)))

    def resume(self, attempts: Iterable[Attempt], now: int) -> None:
        """After a restart: unanswered attempts of the visits taken back get their timers
        again, counted from now (a shown invitation: its own timeout and the grace; a paced
        one: the wait in line), and their agent group paces them again."""
        for attempt in attempts:
            wait_s = self.timeouts.offered_s
            if attempt.state is State.SHOWN:
                wait_s = attempt.timeout_s + self.timeouts.shown_grace_s
            elif attempt.state is State.PACED:
                wait_s = self.paced_wait_s
            if attempt.live:
                self._expect(attempt, now + _ms(wait_s))
                self._resume_pacing(attempt, now)

    def _resume_pacing(self, attempt: Attempt, now: int) -> None:
        """The attempt's agent group paces it again: in line if it was paced, counted in
        flight if it was invited and not answered (the pacer's state was in memory)."""
        strategy = self.engine.strategies.by_name.get(attempt.strategy)
        if self.pacer is None or strategy is None or attempt.origin is not Origin.STRATEGY:
            return
        av = strategy.availability
        if av is None or strategy.decide == "external":
            return
        self.pacer.resume(attempt, av.group, strategy.priority, now, av.min_ready, av.max_wait_s)

    def forget_old(self, now: int | None = None, attempt_ids: Iterable[str] | None = None) -> int:
        """Drop ended attempts from memory once no limit can need them, and the limits'
        records older than any limit looks back; how many attempts were dropped. Given
        ``attempt_ids`` (a slice of a sweep), only those attempts are looked at."""
        now = self.clock() if now is None else now
        if attempt_ids is None:
            self.engine.ledger.forget_before(now - C.LEDGER_DAYS * 86_400_000)
            attempt_ids = list(self.by_id)
        stale_before = now - _ms(C.PUSH_MESSAGE_TTL_S)
        by_id = self.by_id
        forgotten = 0
        for attempt_id in attempt_ids:
            attempt = by_id.get(attempt_id)
            if (
                attempt is not None
                and not attempt.live
                and attempt.transitions[-1][1] < stale_before
            ):
                del by_id[attempt_id]
                forgotten += 1
        return forgotten

    def forget_visitor(self, visit_ids: Collection[str], global_visit_ids: Collection[str]) -> int:
        """A visitor's erasure: their live attempts end (``cancelled``, reason ``erased``: an
        open invitation closes), then none of their attempts stays in memory (limits,
        cool-downs, goal windows, timers, the strategies' schedule, the pacer). How many
        attempts were forgotten."""
        now = self.clock()
        mine = [
            a for a in self.by_id.values()
            if a.visit_id in visit_ids or a.global_visit_id in global_visit_ids
        ]  # fmt: skip
        for attempt in mine:
            if attempt.live and attempt.can_move(State.CANCELLED):
                self._move(attempt, State.CANCELLED, now, "erased")
            del self.by_id[attempt.attempt_id]
            self._deadline_of.pop(attempt.attempt_id, None)
        for gvid in {*global_visit_ids, *(a.global_visit_id for a in mine)}:
            self.engine.ledger.by_visitor.pop(gvid, None)
            self.goals.by_visitor.pop(gvid, None)
        self.engine.forget_visits(visit_ids)  # conditions waiting to ripen
        if self.pacer is not None:  # lines of agent groups, invitations it follows
            self.pacer.forget({a.attempt_id for a in mine})
        return len(mine)

    # -- the one place a state changes --

    def _move(
        self, attempt: Attempt, state: State, now: int, reason: str, close: bool = True
    ) -> None:
        if not attempt.can_move(state):
            raise Conflict(attempt, state.value)
        attempt.move(state, now, reason)
        visit = self.registry.get(attempt.visit_id)
        if visit is not None:
            self.registry.mark_changed(visit)  # listings show the engagement state
        self.reached[state.value] += 1
        self.store.record_attempt(attempt)
        if not attempt.live:
            self._deadline_of.pop(attempt.attempt_id, None)
            if close:
                self._close_invite(attempt, now)
            if self.claims is not None:
                self.claims.release(attempt.visit_id, attempt.attempt_id)
        log.info(
            "attempt %s %s%s", attempt.attempt_id, state.value, f" ({reason})" if reason else "",
            extra={"visitID": attempt.visit_id, "attemptID": attempt.attempt_id},
        )  # fmt: skip

    def _close_invite(self, attempt: Attempt, now: int) -> None:
        """Once answered (or ended), the invitation leaves every tab that may show it."""
        data = {"attemptID": attempt.attempt_id, "reason": attempt.state.value}
        self.push.publish(attempt.visit_id, None, CLOSE_INVITE_CHANNEL, data, now)

    def _expect(self, attempt: Attempt, deadline_ms: int) -> None:
        """Expire the attempt if it is still in its current state at ``deadline_ms`` (this
        replaces any earlier deadline of the attempt)."""
        if self.claims is not None:  # several nodes: the deadline is shared, not kept here
            if attempt.live:
                self.claims.hold(attempt, deadline_ms)
            return
        seq = next(self._seq)
        self._deadline_of[attempt.attempt_id] = seq
        heapq.heappush(self._deadlines, (deadline_ms, seq, attempt, attempt.state))

    def _timeout_of(self, attempt: Attempt) -> float:
        state = attempt.state
        if state is State.ACCEPTED:
            return (
                self.timeouts.queued_s if QUEUED_AT in attempt.handoff else self.timeouts.accepted_s
            )
        if state is State.LAUNCHED:
            return self.timeouts.launched_s
        return self.timeouts.offered_s


class _NoConversions:
    def record_conversion(self, conversion: Conversion) -> None:
        return None


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
