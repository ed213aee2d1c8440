"""A real Redis Cluster for the tests: three primaries (``redis-server --cluster-enabled yes``)
on free ports under a temporary folder, joined by ``redis-cli --cluster create``, started once
per test session and emptied before each test. With ``CI`` set, missing binaries fail the
tests; without it, they are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from engagement.cluster.shards import ClusterUrl

PRIMARIES = 3
START_DEADLINE_S = 30  # a deadline for the cluster to be up, not a timing assertion
BUS_OFFSET = 10_000  # Redis Cluster's bus listens on the port + 10000


def _free_port() -> int:
    """A port free for the node and for its cluster bus (port + 10000)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + BUS_OFFSET > 65_535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        return port


class LocalCluster:
    """Three primaries on 127.0.0.1, each with ``replicas`` replicas; ``url`` is the engine's
    ``redis+cluster://`` setting. ``node_timeout_ms``: how long a primary may not answer
    before the others count it failed and a replica takes its place."""

    def __init__(self, folder: Path, replicas: int = 0, node_timeout_ms: int = 15_000) -> None:
        self.folder = folder
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port)

    def start(self) -> None:
        for _ in range(PRIMARIES * (1 + self.replicas)):
            port = _free_port()
            home = self.folder / str(port)
            home.mkdir()
            args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes", "--cluster-config-file", str(home / "nodes.conf"),
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    "--dir", str(home), "--save", "", "--appendonly", "no",
                    "--logfile", str(home / "redis.log")]  # fmt: skip
            self.processes.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
            self.ports.append(port)
        for port in self.ports:
            self._until(lambda p=port: self.node(p).ping(), f"redis-server on {port} answers")
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=START_DEADLINE_S,
        )  # fmt: skip
        for port in self.ports:
            self._until(lambda p=port: self.ok(p), f"node {port} says cluster_state:ok")
        if self.replicas:
            self._until(self._replicas_in_sync, "every replica in sync with its primary")

    def _replicas_in_sync(self) -> bool:
        return all(
            self.node(port).info("replication").get("master_link_status") == "up"
            for port in self.ports
            if port not in self.primaries()
        )

    def primaries(self) -> set[int]:
        """The ports of the nodes that serve slots now."""
        slots = self.node(self._alive()).execute_command("CLUSTER", "SLOTS")
        return {int(primary[1]) for _, _, primary, *_ in slots}

    def replica_of(self, primary: int) -> int:
        """The port of a replica of the primary at ``primary`` (as the replica says)."""
        for port, process in zip(self.ports, self.processes, strict=True):
            if port != primary and process.poll() is None:
                info = self.node(port).info("replication")
                if info.get("role") == "slave" and int(info.get("master_port", 0)) == primary:
                    return port
        raise LookupError(primary)

    def synced(self, primary: int, replica: int) -> bool:
        """Whether the replica has everything the primary wrote so far."""
        offset = int(self.node(primary).info("replication")["master_repl_offset"])
        return int(self.node(replica).info("replication")["slave_repl_offset"]) >= offset

    def _alive(self) -> int:
        """A port whose server still runs (a test may have killed some)."""
        return next(
            p for p, proc in zip(self.ports, self.processes, strict=True) if proc.poll() is None
        )

    def kill(self, port: int) -> None:
        """kill -9 of the server at ``port``."""
        process = self.processes[self.ports.index(port)]
        process.kill()
        process.wait()

    def ok(self, port: int) -> bool:
        return bool(self.node(port).cluster("INFO")["cluster_state"] == "ok")

    def _until(self, check: object, what: str) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            with contextlib.suppress(redis.RedisError, OSError):
                if check():  # type: ignore[operator]
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"never: {what} (logs in {self.folder})")
            time.sleep(0.05)

    def flush(self) -> None:
        for port in self.primaries():  # replicas follow
            self.node(port).flushall()

    def primary_of(self, slot: int) -> int:
        """The port of the primary that serves ``slot``."""
        for start, end, primary, *_ in self.node(self._alive()).execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
        raise LookupError(slot)

    def node_id(self, port: int) -> str:
        return str(self.node(port).execute_command("CLUSTER", "MYID").decode())

    def begin_move(self, slot: int, to_port: int) -> int:
        """Start migrating ``slot`` to ``to_port`` and move its keys (the slot is still the
        old primary's: its keys are asked for with ASK); the old primary's port."""
        source = self.primary_of(slot)
        self.node(to_port).execute_command(
            "CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(source)
        )
        self.node(source).execute_command(
            "CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(to_port)
        )
        keys = self.node(source).execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        if keys:
            self.node(source).execute_command(
                "MIGRATE", "127.0.0.1", to_port, "", 0, 5000, "KEYS", *keys
            )
        return source

    def end_move(self, slot: int, to_port: int) -> None:
        """Give ``slot`` to ``to_port`` on every primary (``MOVED`` from then on)."""
        target = self.node_id(to_port)
        for port in [to_port] + [p for p in self.ports if p != to_port]:
            self.node(port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", target)
        self._until(lambda: self.primary_of(slot) == to_port, f"slot {slot} served by {to_port}")

    def move_slot(self, slot: int, to_port: int) -> int:
        """Reshard one slot, keys and all, as ``redis-cli --cluster reshard`` does; the
        port of its old primary."""
        source = self.begin_move(slot, to_port)
        self.end_move(slot, to_port)
        return source

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _need_binaries() -> None:
    missing = [b for b in ("redis-server", "redis-cli") if shutil.which(b) is None]
    if not missing:
        return
    message = f"{' and '.join(missing)} not installed (Debian's redis-server package)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must run the Redis Cluster tests")
    pytest.skip(f"{message}; set CI to make this a failure")


@contextlib.contextmanager
def running_cluster(replicas: int = 0, node_timeout_ms: int = 15_000) -> Iterator[LocalCluster]:
    """A cluster started in a folder of its own, stopped and removed after."""
    _need_binaries()
    folder = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
    cluster = LocalCluster(folder, replicas, node_timeout_ms)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """Three primaries of a Redis Cluster, for the whole test session."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def cluster_url(redis_cluster: LocalCluster) -> Iterator[str]:
    """The cluster's ``redis+cluster://`` URL, emptied before and after the test."""
    redis_cluster.flush()
    yield redis_cluster.url
    redis_cluster.flush()


def redis_client(url: str) -> aioredis.Redis | RedisCluster:
    """A redis-py client for a test's look at Redis: a cluster client for a
    ``redis+cluster://`` URL (SCAN then covers every primary), else a plain one."""
    if url.startswith("redis+cluster://"):
        seeds = ClusterUrl.parse(url).seeds
        return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in seeds])
    return aioredis.Redis.from_url(url)
