"""Redis Cluster: which shard holds a key, and the hot path's wire to every shard.

``redis+cluster://[[user]:password@]host:port[,host:port...]`` names seed nodes of a Redis
Cluster. The node asks one of them for the slot map (``CLUSTER SLOTS``: which primary serves
each of the 16384 hash slots), keeps one ``Wire`` per primary, and sends each command to the
primary of its first key's slot (CRC16 of the key's hash tag, as the Redis Cluster
specification says). A request's commands are split by shard, sent to all shards at once, and
their answers given back in the request's order. A shard that answers ``MOVED`` (the slot was
moved, or a replica took over) makes the node load the map again and send the command there;
``ASK`` (a slot being migrated) sends it once to the named node after ``ASKING``; a shard
lost for good (its wire gave up) makes the node load the map again and try once more (a
second loss fails the request, as a lost single server does).

Every key of the engine carries a hash tag (``eng:{visitID}:...``, ``eng:{limits}:...``), and
every script touches the keys of one tag, so no command spans two slots (docs/cluster.md).
The single-server ``Wire`` is left as it is: none of this runs without a cluster URL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.commands.core import AsyncScript
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .resp import Arg, answers_noting_noscript
from .wire import Wire

SCHEME = "redis+cluster://"
MAX_REDIRECTS = 5  # MOVED/ASK/TRYAGAIN followed for one command before giving up
TRYAGAIN_S = 0.05  # a multi-key command met a slot half migrated: wait this long, send again


class ClusterUrlError(ValueError):
    """A ``redis+cluster://`` URL that names no seed node, or a database."""


def is_cluster(url: str) -> bool:
    return url.startswith(SCHEME)


@dataclass(frozen=True)
class ClusterUrl:
    """The seed nodes of a ``redis+cluster://`` URL and the login every node takes."""

    seeds: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> ClusterUrl:
        if not is_cluster(url):
            raise ClusterUrlError(f"not a {SCHEME} URL: {url!r}")
        rest = url[len(SCHEME) :]
        login, _, hosts = rest.rpartition("@")
        if "/" in hosts.rstrip("/") or "?" in hosts:
            raise ClusterUrlError(
                f"a Redis Cluster has no database (nor options): {hosts!r} in redis_url"
            )
        seeds = []
        for node in hosts.rstrip("/").split(","):
            host, _, port = node.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ClusterUrlError(f"seed node {node!r} in redis_url is not host:port")
            seeds.append((host.strip("[]"), int(port)))
        username, password = None, None
        if login:
            user, colon, secret = login.partition(":")
            username = unquote(user) or None
            password = unquote(secret) if colon else None
            if not colon:  # redis://password@host, as redis-py reads it
                username, password = None, unquote(user)
        return cls(tuple(seeds), username, password)

    def node_url(self, host: str, port: int) -> str:
        """A ``redis://`` URL of one node, with the login (for Wire and Subscriber)."""
        login = ""
        if self.password is not None:
            login = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@"
        bracketed = f"[{host}]" if ":" in host else host
        return f"redis://{login}{bracketed}:{port}"

    def node_urls(self) -> list[str]:
        return [self.node_url(host, port) for host, port in self.seeds]


def slot_of(key: Arg) -> int:
    """The hash slot of a key (its hash tag's, when it has one)."""
    return int(key_slot(key if isinstance(key, bytes) else str(key).encode()))


def first_key(cmd: Sequence[Arg]) -> Arg | None:
    """The key a command is routed by: a script's first key, else its first argument."""
    name = cmd[0]
    if name in ("EVALSHA", "EVAL"):
        return cmd[3] if int(cmd[2]) > 0 else None
    return cmd[1] if len(cmd) > 1 else None


def _redirect(answer: Any) -> tuple[str, int, str] | None:
    """("MOVED" | "ASK", slot, "host:port") of a redirection error, else None."""
    if not isinstance(answer, ResponseError):
        return None
    kind, _, rest = str(answer).partition(" ")
    if kind not in ("MOVED", "ASK"):
        return None
    slot, _, address = rest.partition(" ")
    return kind, int(slot), address


class ClusterWire:
    """``Wire``'s interface over a Redis Cluster: one ``Wire`` per primary, commands routed by
    slot, answers in order."""

    def __init__(self, url: str, timeout_s: float, retries: int) -> None:
        self.cluster = ClusterUrl.parse(url)
        self.timeout_s = timeout_s
        self.retries = retries
        self.scripts: dict[str, str] = {}  # SHA -> Lua, shared by every shard's wire
        self.slots: list[str] = []  # slot -> "host:port" of its primary (empty: not loaded)
        self.refreshes = 0  # slot maps loaded (for tests and logs)
        self._wires: dict[str, Wire] = {}
        self._loading: asyncio.Future[None] | None = None

    def wire(self, address: str) -> Wire:
        """The wire to the node at ``host:port`` (made at first use)."""
        wire = self._wires.get(address)
        if wire is None:
            host, _, port = address.rpartition(":")
            url = self.cluster.node_url(host.strip("[]"), int(port))
            wire = self._wires[address] = Wire(url, self.timeout_s, self.retries)
            wire.scripts = self.scripts
        return wire

    def address_of(self, cmd: Sequence[Arg]) -> str:
        key = first_key(cmd)
        return self.slots[0 if key is None else slot_of(key)]

    async def execute(self, *commands: Sequence[Arg]) -> list[Any]:
        """Send ``commands`` to their shards at once; their answers, in order (the first
        error raised)."""
        if not commands:
            return []
        if not self.slots:
            await self.refresh()
        answers: list[Any] = [None] * len(commands)
        todo = list(range(len(commands)))
        was_lost = False
        for turn in range(MAX_REDIRECTS + 1):
            groups: dict[str, list[int]] = {}
            for i in todo:
                groups.setdefault(self.address_of(commands[i]), []).append(i)
            results = await self._send_all(commands, groups)
            todo, stale, lost = [], False, None
            for indexes, result in zip(groups.values(), results, strict=True):
                if isinstance(result, (RedisConnectionError, RedisTimeoutError, OSError)):
                    if was_lost:  # lost again after reading the map: down, not moved
                        raise result
                    lost, stale = result, True  # the shard may have failed over: ask again
                    todo += indexes
                    continue
                if isinstance(result, BaseException):
                    raise result
                for i, answer in zip(indexes, result, strict=True):
                    answers[i] = answer
                    if isinstance(answer, ResponseError):
                        text = str(answer)
                        if text.startswith("MOVED "):
                            stale = True
                            todo.append(i)
                        elif text.startswith("ASK "):
                            answers[i] = await self._ask(answer, commands[i])
                        elif text.startswith(("TRYAGAIN", "CLUSTERDOWN")):
                            stale = stale or text.startswith("CLUSTERDOWN")
                            todo.append(i)
            if not todo:
                break
            was_lost = was_lost or lost is not None
            if turn == MAX_REDIRECTS:
                if lost is not None:
                    raise lost
                break  # the last redirection error is the answer
            if stale:
                await self._refresh_after(answers, todo)
            else:
                await asyncio.sleep(TRYAGAIN_S)
        for answer in answers:
            if isinstance(answer, RedisError):
                raise answer
        return answers

    async def _send_all(
        self, commands: Sequence[Sequence[Arg]], groups: dict[str, list[int]]
    ) -> list[Any]:
        """Each shard's part at once: its answers, or the exception it raised."""
        if len(groups) == 1:  # most requests: one visit, one shard (no task to gather)
            [(address, indexes)] = groups.items()
            try:
                return [await self._send(address, [commands[i] for i in indexes])]
            except (RedisError, OSError) as exc:
                return [exc]
        results: list[Any] = await asyncio.gather(
            *(self._send(a, [commands[i] for i in ix]) for a, ix in groups.items()),
            return_exceptions=True,
        )
        return results

    async def _send(self, address: str, commands: list[Sequence[Arg]]) -> list[Any]:
        """One round trip to one shard (scripts Redis forgot loaded and sent again)."""
        wire = self.wire(address)
        answers = await wire.round_trip(commands)
        forgot = [i for i, answer in enumerate(answers) if isinstance(answer, NoScriptError)]
        if forgot:
            again = await wire.round_trip([commands[i] for i in forgot])
            for i, answer in zip(forgot, again, strict=True):
                answers[i] = answer
        return answers

    async def _ask(self, answer: ResponseError, cmd: Sequence[Arg]) -> Any:
        """The answer of the node a migrating slot's key now lives on (``ASKING`` first)."""
        _, _, address = _redirect(answer) or ("", 0, "")
        asking, reply = await self._send(address, [("ASKING",), cmd])
        return reply if not isinstance(asking, RedisError) else asking

    async def _refresh_after(self, answers: list[Any], todo: list[int]) -> None:
        await self.refresh()
        for i in todo:  # what MOVED said wins over a map read from a node that lags
            moved = _redirect(answers[i])
            if moved is not None and moved[0] == "MOVED":
                self.slots[moved[1]] = moved[2]

    async def refresh(self) -> None:
        """Load the slot map (one load at a time; every caller waits for it)."""
        if self._loading is not None:
            await asyncio.shield(self._loading)
            return
        self._loading = asyncio.get_running_loop().create_future()
        try:
            await self._load()
            self._loading.set_result(None)
        except BaseException as exc:
            self._loading.set_exception(exc)
            self._loading.exception()  # retrieved: maybe nobody else waits
            raise
        finally:
            self._loading = None

    async def _load(self) -> None:
        known = list(dict.fromkeys(self.slots)) + [f"{h}:{p}" for h, p in self.cluster.seeds]
        failures: list[str] = []
        for address in dict.fromkeys(known):
            try:
                [ranges] = await self.wire(address).execute(("CLUSTER", "SLOTS"))
            except (RedisError, OSError) as exc:
                failures.append(f"{address}: {exc!r}")
                continue
            slots = [""] * REDIS_CLUSTER_HASH_SLOTS
            asked_host = address.rpartition(":")[0]
            for start, end, primary, *_replicas in ranges:
                host = primary[0].decode() or asked_host
                slots[start : end + 1] = [f"{host}:{primary[1]}"] * (end - start + 1)
            if "" in slots:
                failures.append(f"{address}: some hash slots are served by no node")
                continue
            self.slots = slots
            self.refreshes += 1
            await self._close_unused()
            return
        raise RedisConnectionError(
            "no node of the Redis Cluster gave its slot map: " + "; ".join(failures)
        )

    async def _close_unused(self) -> None:
        used = set(self.slots)
        for address in [a for a in self._wires if a not in used]:
            with contextlib.suppress(Exception):
                await self._wires.pop(address).close()

    async def close(self) -> None:
        for wire in list(self._wires.values()):
            await wire.close()
        self._wires.clear()


class ScriptsOnceClusterPipeline(ClusterPipeline):
    """``ScriptsOncePipeline`` for a cluster: the scripts its commands call are loaded on
    every primary once (``SCRIPT LOAD`` goes to all of them), not asked about before every
    pipeline; a NOSCRIPT answer (a node restarted, a new primary) makes the next pipeline load
    them again. Its commands go to their own shards (``transaction=False``)."""

    def __init__(self, client: LinkRedisCluster, transaction: bool | None) -> None:
        super().__init__(client, transaction)
        self.link_client = client

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> ClusterPipeline:
        """Queued for the shard of its first key (a script object awaits this: awaiting the
        pipeline itself would empty it). redis-py refuses scripts in a cluster pipeline
        because nothing loads them on the nodes: ``execute`` does."""
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        client = self.link_client
        queue = self._execution_strategy._command_queue  # type: ignore[attr-defined]
        await client.load_scripts({str(cmd.args[1]) for cmd in queue if cmd.args[0] == "EVALSHA"})
        execute = super().execute(raise_on_error, allow_redirections)
        return await answers_noting_noscript(execute, client.loaded_scripts)


class LinkRedisCluster(RedisCluster):
    """redis-py's cluster client whose pipelines load their scripts once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loaded_scripts: set[str] = set()
        self.lua: dict[str, str] = {}  # SHA -> Lua of every script registered

    def register_script(self, script: Any) -> AsyncScript:  # type: ignore[override]
        registered = super().register_script(script)
        self.lua[registered.sha] = script
        return registered

    async def load_scripts(self, shas: set[str] | None = None) -> None:
        """Load these scripts (all registered ones: None) on every primary, unless they are
        known to be loaded."""
        for sha in (set(self.lua) if shas is None else shas) - self.loaded_scripts:
            await self.script_load(self.lua[sha])
            self.loaded_scripts.add(sha)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        return ScriptsOnceClusterPipeline(self, transaction)  # type: ignore[abstract]


def cluster_client(url: str, **options: Any) -> LinkRedisCluster:
    """redis-py's cluster client on the seed nodes of a ``redis+cluster://`` URL."""
    parsed = ClusterUrl.parse(url)
    return LinkRedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in parsed.seeds],
        username=parsed.username,
        password=parsed.password,
        **options,
    )
