"""The node's Redis connection, its key names and its round-trip figures.

Every key of a visit carries the visit's hash tag (``{visitID}``), so that a visit's keys live
in one hash slot and a multi-key script about one visit runs unchanged on Redis Cluster
(``redis+cluster://`` URLs: shards.py routes each command to its slot's primary). Keys about
no visit name their own tag (``{limits}``...).
The connection is shared by everything that uses Redis on this node (state, push routing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Histogram
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .resp import Arg, answers_noting_noscript
from .sentinel import SENTINEL_TIMEOUT_S, Sentinels, SwitchWatch, is_sentinel
from .sentinel import parse_url as parse_sentinel_url
from .shards import ClusterWire, LinkRedisCluster, cluster_client, is_cluster
from .wire import Script, Wire

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..settings import Settings

log = logging.getLogger(__name__)

KEY_PREFIX = "eng"  # every key the engine writes starts with it
SOCKET_TIMEOUT_S = 2.0  # a command not answered by then fails (and /ready says so)
CONNECT_RETRIES = 3  # a dropped connection is retried this often, backing off, per command
DRAIN_TIMEOUT_S = 5.0  # at stop, writes still on their way get this long to reach Redis
ROUND_TRIP_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)

T = TypeVar("T")


class ClusterConfigError(ValueError):
    """Settings that cannot give a correct engine with several nodes (said at start)."""


def check_settings(settings: Settings) -> None:
    """Refuse Redis live state over a history each node keeps alone.

    With ``redis_url`` every node takes any visit's events, so each would write pieces of every
    visit into its own SQLite file: no node could read a whole visit back, and attempts, limits
    and the callback outbox would be split. That is refused unless ``database_url`` (one shared
    PostgreSQL history) is set, or ``single_node`` says this is the only node (Redis then only
    keeps live state across restarts of the one node)."""
    if settings.redis_url is None or settings.single_node:
        return
    if settings.database_url:  # one PostgreSQL history the nodes share
        return
    raise ClusterConfigError(
        "redis_url is set without database_url: several nodes would each write their own "
        f"SQLite history ({settings.db_path}) and none could read a whole visit back. Set "
        "database_url (ENGAGEMENT_DATABASE_URL=postgresql://...) to share one history, or "
        "single_node = true (ENGAGEMENT_SINGLE_NODE=true) if this is the only node."
    )


def visit_key(visit_id: str, part: str) -> str:
    """A key of one visit: all of a visit's keys share its hash slot."""
    return f"{KEY_PREFIX}:{{{visit_id}}}:{part}"


def shared_key(tag: str, part: str) -> str:
    """A key about no one visit, in the hash slot of ``tag``."""
    return f"{KEY_PREFIX}:{{{tag}}}:{part}"


def redacted(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class ScriptsOncePipeline(Pipeline):
    """A pipeline that asks Redis whether its Lua scripts are loaded once per script, not on
    every execute: redis-py sends SCRIPT EXISTS before each pipeline that holds a script, a
    second round trip for every event and push batch. Redis forgets its scripts only when it
    restarts (or they are flushed): the pipeline that meets NOSCRIPT then fails like any Redis
    error (the request is refused and retried) and the next one loads them again."""

    def __init__(self, *args: Any, loaded: set[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loaded = loaded  # the client's: SHAs known to be loaded

    async def load_scripts(self) -> None:
        shas = {script.sha for script in self.scripts}
        if not shas <= self.loaded:
            await super().load_scripts()  # type: ignore[no-untyped-call]
            self.loaded.update(script.sha for script in self.scripts)

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        return await answers_noting_noscript(super().execute(raise_on_error), self.loaded)


class LinkRedis(aioredis.Redis):
    """redis-py's client whose pipelines load their scripts once (ScriptsOncePipeline)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loaded_scripts: set[str] = set()

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return ScriptsOncePipeline(
            self.connection_pool,
            self.response_callbacks,
            transaction,
            shard_hint,
            loaded=self.loaded_scripts,
        )


class RedisLink:
    """One Redis client for the node (a pool of connections that reconnect by themselves),
    timed: ``run`` counts each round trip and observes its duration."""

    def __init__(self, url: str) -> None:
        self.url = redacted(url)  # for logs and errors
        self.connect_url = url  # with its password: for the pub/sub connection, never logged
        options: dict[str, Any] = {
            "socket_timeout": SOCKET_TIMEOUT_S,
            "socket_connect_timeout": SOCKET_TIMEOUT_S,
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.01), CONNECT_RETRIES),
            "retry_on_error": [RedisConnectionError, RedisTimeoutError],
            "health_check_interval": 30,
        }
        self.client: aioredis.Redis | RedisCluster
        # The hot path (every event's log script): one multiplexed connection, no pool.
        self.wire: Wire | ClusterWire
        self._sentinel: Sentinel | None = None
        self._watch: SwitchWatch | None = None
        # Under Sentinel: told when the master moved; others' connections to let go then.
        self.on_master_switch: list[Callable[[], None]] = []
        if is_cluster(url):  # Redis Cluster: commands routed by slot (shards.py)
            self.client = cluster_client(url, **options)
            self.wire = ClusterWire(url, SOCKET_TIMEOUT_S, CONNECT_RETRIES)
        elif is_sentinel(url):  # the master the sentinels name (sentinel.py)
            self.client, self._sentinel = _sentinel_client(url, options)
            self.wire = Wire(url, SOCKET_TIMEOUT_S, CONNECT_RETRIES)
            sentinels = Sentinels(parse_sentinel_url(url))
            self._watch = SwitchWatch(sentinels, self._master_switched)
        else:
            self.client = LinkRedis.from_url(url, **options)
            self.wire = Wire(url, SOCKET_TIMEOUT_S, CONNECT_RETRIES)
        self.round_trips = 0
        self.failures = 0
        self._histogram: Histogram | None = None

    def register(self, registry: CollectorRegistry) -> None:
        """Observe round trips into this metrics registry."""
        self._histogram = Histogram(
            "engagement_redis_round_trip_seconds",
            "Time from sending a command (or a script, or a pipeline) to Redis to its answer",
            registry=registry,
            buckets=ROUND_TRIP_BUCKETS_S,
        )

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await one round trip to Redis, counted and timed."""
        started = time.perf_counter()
        self.round_trips += 1
        try:
            return await awaitable
        except Exception:
            self.failures += 1
            raise
        finally:
            if self._histogram is not None:
                self._histogram.observe(time.perf_counter() - started)

    @property
    def master_switches(self) -> int:
        """How many times the sentinels announced a new master since start (0 without)."""
        return self._watch.switches if self._watch is not None else 0

    async def _master_switched(self) -> None:
        """The sentinels named a new master: every connection to the old one is let go, and
        opened again to the new one (requests under way are sent again)."""
        await self.wire.close()
        if isinstance(self.client, aioredis.Redis):
            await self.client.connection_pool.disconnect()
        for let_go in self.on_master_switch:
            let_go()

    async def ping(self) -> None:
        """Redis answers; one server (or the Sentinel master) as a master: a server that
        turned replica (a failover) does not do. The pool then lets its connections go, to
        connect again (to the master the sentinels name now, under Sentinel)."""
        if not isinstance(self.client, aioredis.Redis):  # a cluster: any node answers
            await self.run(self.client.ping())
            return
        role = await self.run(self.client.execute_command("ROLE"))  # type: ignore[no-untyped-call]
        if role[0] not in (b"master", "master"):
            await self.client.connection_pool.disconnect()
            raise RedisConnectionError(f"Redis at {self.url} is a replica now, not a master")

    async def connect(self) -> None:
        """At start: Redis answers. On a cluster, the slot map is loaded and the scripts
        registered so far are loaded on every primary, so that the first requests do not
        pay for them (a node's first writes would otherwise land late)."""
        await self.ping()
        if isinstance(self.client, LinkRedisCluster) and isinstance(self.wire, ClusterWire):
            await self.wire.refresh()
            await self.run(self.client.load_scripts())
        if self._watch is not None:  # under Sentinel: hear of failovers from now on
            self._watch.start()

    def script(self, lua: str) -> Any:
        """A Lua script, sent by its SHA (and loaded again when Redis lost it)."""
        return self.client.register_script(lua)

    def wire_script(self, lua: str) -> Script:
        """A Lua script for ``send``: its ``call(keys, args)`` is the command."""
        script = Script(lua)
        self.wire.scripts[script.sha] = lua
        return script

    async def send(self, *commands: Sequence[Arg]) -> list[Any]:
        """One round trip of ``commands`` on the hot path's connection (wire.py), counted and
        timed; their answers in order."""
        return await self.run(self.wire.execute(*commands))

    async def close(self) -> None:
        if self._watch is not None:
            await self._watch.aclose()
        await self.wire.close()
        await self.client.aclose()
        if self._sentinel is not None:
            await self._sentinel.aclose()


def _sentinel_client(url: str, options: dict[str, Any]) -> tuple[aioredis.Redis, Sentinel]:
    """redis-py's client for the master of a ``redis+sentinel://`` URL, and the sentinels it
    asks (to close)."""
    config = parse_sentinel_url(url)
    # Each sentinel is asked once: the next one is the retry. redis-py's default retries a
    # sentinel 3 times with backoffs of about 1 s: a dead sentinel listed first held every
    # master lookup (a node's start among them) for ~3.3 s.
    asked_once = {
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 0),
    }
    sentinel = Sentinel(list(config.sentinels), sentinel_kwargs=asked_once)  # type: ignore[no-untyped-call]
    client = sentinel.master_for(
        config.master,
        redis_class=LinkRedis,
        username=config.username,
        password=config.password,
        db=config.db,
        **options,
    )
    return client, sentinel


class WriteBehind:
    """Writes to Redis that no request waits for (attempt copies, claims' deadlines): awaited,
    never cancelled, when the node stops, so a graceful stop leaves nothing half-shared."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failed = 0

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.failed += 1
            log.error("write to Redis %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
