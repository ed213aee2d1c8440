"""Real `engagement serve` processes behind a real nginx (Debian's), as an operator runs them.

The nginx configuration is the one docs/cluster.md shows ("Behind nginx"), taken out of the
page: only the nodes' addresses and the port it listens on are changed, so the documented
example is the tested one.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port

from engagement.app import create_app
from engagement.settings import Settings

NGINX = "/usr/sbin/nginx"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "cluster.md"
API_KEY = "cluster-e2e-key"
DEADLINE_S = 30  # a deadline for a state to be reached, not a timing assertion
# What the test adds around the documented snippet (a whole nginx.conf of its own): an access
# log that names the node which answered each request.
WRAPPER = """\
events {{ worker_connections 1024; }}
http {{
    log_format upstreams '$request_method $uri $status $upstream_addr';
    access_log {access_log} upstreams;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
{snippet}
}}
"""


@functools.cache
def _router() -> web.UrlDispatcher:
    """The engine's routes (with the demo's), from an app that is built and never started."""
    folder = Path(tempfile.mkdtemp(prefix="routes-"))
    app = create_app(Settings(data_dir=folder, strategies_dir=folder, api_keys=[API_KEY]))
    return app.router


def path(name: str, query: Mapping[str, str] | None = None, **parts: str) -> str:
    """The path of the engine's route ``name`` (engagement/api/routes.py), with its parts."""
    url = _router()[name].url_for(**parts)
    return str(url.with_query(query) if query is not None else url)


def need_nginx() -> None:
    """Skip (outside CI) or fail (in CI) when Debian's nginx is not installed."""
    if Path(NGINX).is_file():
        return
    message = f"{NGINX} is absent (apt-get install nginx-light; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must run this test")
    pytest.skip(f"{message}; set CI to make this a failure")


def documented_config() -> str:
    """The nginx snippet of docs/cluster.md's "Behind nginx" section."""
    text = DOCS.read_text()
    section = text.split("## Behind nginx", 1)[1]
    found = re.search(r"```nginx\n(.*?)```", section, re.S)
    assert found, "docs/cluster.md, Behind nginx: no ```nginx block"
    return found.group(1)


def render(snippet: str, nodes: list[int], port: int) -> str:
    """The documented snippet with these nodes' ports (on 127.0.0.1) and this listen port."""
    servers = re.findall(r"^\s*server 10\.0\.0\.\d+:9081\b[^;]*;\n", snippet, re.M)
    assert len(servers) == 2, "the documented upstream lists two nodes"
    options = servers[0].strip().removesuffix(";").split(" ", 2)[2:]
    lines = "".join(f"        server 127.0.0.1:{p} {' '.join(options)};\n" for p in nodes)
    snippet = snippet.replace(servers[0], lines, 1).replace(servers[1], "", 1)
    assert re.search(r"^\s*listen 80;$", snippet, re.M), "the documented server listens on 80"
    return re.sub(r"^(\s*)listen 80;$", rf"\1listen 127.0.0.1:{port};", snippet, flags=re.M)


def nginx_conf(prefix: Path, nodes: list[int], port: int) -> Path:
    """A whole nginx.conf in ``prefix`` around the documented snippet."""
    snippet = "\n".join("    " + line if line else "" for line in documented_config().split("\n"))
    conf = prefix / "nginx.conf"
    conf.write_text(
        WRAPPER.format(
            access_log=prefix / "access.log",
            prefix=prefix,
            snippet=render(snippet, nodes, port),
        )
    )
    return conf


def nginx_args(prefix: Path, conf: Path) -> list[str]:
    directives = f"daemon off; pid {prefix}/nginx.pid; error_log {prefix}/error.log info;"
    if os.geteuid() == 0:  # workers would otherwise run as nobody, locked out of tmp_path
        directives += " user root;"
    return [NGINX, "-p", f"{prefix}/", "-c", str(conf), "-g", directives]


def nginx_test(prefix: Path, conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*nginx_args(prefix, conf), "-t"], capture_output=True, text=True, timeout=DEADLINE_S
    )


async def wait_for(url: str, proc: asyncio.subprocess.Process, what: str) -> None:
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            assert proc.returncode is None, f"{what} exited ({proc.returncode})"
            try:
                async with session.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"{what} did not answer {url}")


@dataclass
class Node:
    """One `engagement serve` in its own folder (its engagement.toml, its data, its log)."""

    name: str
    folder: Path
    port: int
    settings: dict[str, Any]
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{self.address}{path}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        values = {"host": "127.0.0.1", "port": self.port, **self.settings}
        lines = [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        (self.folder / "engagement.toml").write_text("\n".join(lines) + "\n")
        self.starts += 1
        log = (self.folder / f"serve-{self.starts}.log").open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "engagement", "serve", cwd=self.folder, env=env,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        await wait_for(self.url(path("health")), self.proc, f"node {self.name}")

    async def kill(self) -> None:
        """kill -9: no graceful stop, nothing drained."""
        assert self.proc is not None
        assert self.proc.returncode is None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), DEADLINE_S)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("*.log")))


@dataclass
class Balancer:
    """nginx in ``prefix``, round-robin over the nodes, on 127.0.0.1:``port``."""

    prefix: Path
    port: int
    nodes: list[Node]
    proc: asyncio.subprocess.Process | None = None
    conf: Path = field(init=False)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.conf = nginx_conf(self.prefix, [n.port for n in self.nodes], self.port)
        checked = nginx_test(self.prefix, self.conf)
        assert checked.returncode == 0, checked.stderr
        self.proc = await asyncio.create_subprocess_exec(
            *nginx_args(self.prefix, self.conf),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        await wait_for(self.url(path("health")), self.proc, "nginx")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: open streams are cut
            try:
                await asyncio.wait_for(self.proc.wait(), DEADLINE_S)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def answered(self, method: str, path: str) -> list[tuple[int, str]]:
        """(status, node address) of every logged request of ``method`` to ``path``; a
        request nginx passed on from a dead node names both, the dead one first."""
        found = []
        log = self.prefix / "access.log"
        for line in log.read_text().splitlines() if log.exists() else []:
            m, uri, status, upstreams = line.split(" ", 3)
            if (m, uri) == (method, path):
                found.append((int(status), upstreams))
        return found


def node_settings(
    tmp_path: Path, redis_url: str, database_url: str, balancer_port: int, **extra: Any
) -> dict[str, Any]:
    """What every node of the cluster shares: Redis, PostgreSQL, the strategies, the key."""
    return {
        "api_keys": [API_KEY],
        "allowed_origins": ["http://shop.example", "http://localhost:*", "http://127.0.0.1:*"],
        "redis_url": redis_url,
        "database_url": database_url,
        "strategies_dir": str(tmp_path / "strategies"),
        "public_url": f"http://127.0.0.1:{balancer_port}",
        "trusted_proxies": ["127.0.0.1"],
        "history_flush_interval_s": 0.05,
        "shutdown_timeout_s": 2,
        **extra,
    }


async def cluster(
    tmp_path: Path, redis_url: str, database_url: str, **extra: Any
) -> tuple[Balancer, list[Node]]:
    """Two nodes and nginx in front, all started."""
    need_nginx()
    port = unused_port()
    shared = node_settings(tmp_path, redis_url, database_url, port, **extra)
    (tmp_path / "strategies").mkdir(exist_ok=True)
    nodes = [Node(name, tmp_path / name, unused_port(), shared) for name in ("a", "b")]
    for node in nodes:  # one after the other: both apply the migrations under the lock
        await node.start()
    balancer = Balancer(tmp_path / "nginx", port, nodes)
    await balancer.start()
    return balancer, nodes


async def stop_all(balancer: Balancer, nodes: list[Node]) -> None:
    await balancer.stop()
    await asyncio.gather(*(n.stop() for n in nodes))


async def promtool_check(text: str) -> tuple[int, str]:
    """``promtool check metrics`` on ``text``: its exit code and what it printed."""
    tool = promtool()
    if tool is None:
        pytest.skip("promtool is absent (apt-get install prometheus); set CI to fail instead")
    proc = await asyncio.create_subprocess_exec(
        tool, "check", "metrics", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(text.encode()), DEADLINE_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def promtool() -> str | None:
    """Debian's promtool (package prometheus; .ci/run installs it): required in CI."""
    found = shutil.which("promtool")
    if found is None and os.environ.get("CI"):
        pytest.fail("promtool is absent: CI must check /metrics with it")
    return found
