"""Helpers shared by the benchmarks: pinned server subprocesses, readiness, CPU and memory
readings from /proc, the load generator (wrk, or bench/pyload.py without it), cleanup."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
HOST = "127.0.0.1"  # loopback only, always
SERVER_CPU = "1"  # the servers run here ...
LOADGEN_CPU = "0"  # ... and the load generator here
CLK_TCK = os.sysconf("SC_CLK_TCK")
RESULT_PREFIX = "BENCH_RESULT "


class BenchError(RuntimeError):
    """The benchmark cannot give a valid figure (a server failed, a request was refused...)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pinned(cpu: str, argv: Sequence[str]) -> list[str]:
    """``taskset`` execs the command, so the child's pid is the command's own pid."""
    taskset = shutil.which("taskset")
    if taskset is None:
        raise BenchError("taskset is missing (Debian package util-linux)")
    return [taskset, "-c", cpu, *argv]


@dataclass
class Server:
    """A server subprocess pinned to SERVER_CPU, with its output kept in a log file."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    preexec_fn: Callable[[], object] | None = None  # run in the child before it execs
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError(f"{self.name} is not running")
        return self.proc.pid

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                pinned(SERVER_CPU, self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                preexec_fn=self.preexec_fn,
            )

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def get_json(self, path: str, timeout_s: float = 2.0) -> Any:
        with urllib.request.urlopen(self.base_url + path, timeout=timeout_s) as r:
            return json.loads(r.read())

    def wait_ready(self, path: str = "/health", timeout_s: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            try:
                return self.get_json(path)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"{self.name} not ready after {timeout_s:.0f} s:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.1)

    def cpu_s(self) -> float:
        """User + system CPU seconds of the whole process (all its threads) so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def memory_kib(self) -> dict[str, int]:
        """VmRSS (now) and VmHWM (peak RSS) in KiB."""
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
        return out

    def stop(self, timeout_s: float = 30.0) -> str:
        """SIGTERM (aiohttp shuts down cleanly, the engine flushes its history), then SIGKILL
        after ``timeout_s``. Returns how it went, for the report."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return "not running"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
            return f"killed after SIGTERM was ignored for {timeout_s:.0f} s"
        return f"exited with {code} {time.monotonic() - started:.1f} s after SIGTERM"


@dataclass
class LoadResult:
    """One load run as the generator saw it."""

    requests: int
    duration_s: float
    ok2xx: int
    non2xx: int
    accepted: int  # events the server said it accepted (sum of "accepted")
    duplicates: int
    unparsed: int  # 2xx answers without an accepted/duplicates count
    socket_errors: int
    lat_p50_ms: float
    lat_p99_ms: float
    loadgen_cpu_s: float
    server_cpu_s: float
    server_core_busy_pct: float  # of SERVER_CPU, whoever used it (softirq included)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s

    @property
    def events_per_s(self) -> float:
        return self.accepted / self.duration_s

    @property
    def loadgen_cpu_pct(self) -> float:
        return 100 * self.loadgen_cpu_s / self.duration_s

    @property
    def server_cpu_pct(self) -> float:
        return 100 * self.server_cpu_s / self.duration_s


def cpu_ticks(cpu: str) -> tuple[int, int, int]:
    """(busy, total, steal) jiffies of one CPU from /proc/stat; busy excludes idle and iowait,
    so it includes the kernel's softirq work for loopback TCP, which no process is charged
    for, and steal: the time this virtual machine's host ran something else on the core."""
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name == f"cpu{cpu}":
            v = [int(x) for x in values[:8]]
            return sum(v) - v[3] - v[4], sum(v), v[7]
    raise BenchError(f"cpu{cpu} not in /proc/stat")


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_load(
    server: Server,
    path: str,
    *,
    script: Path,
    script_args: Sequence[str],
    duration_s: float,
    connections: int,
) -> LoadResult:
    """Run the load generator (pinned to LOADGEN_CPU) for ``duration_s`` against ``server``.

    wrk with ``script`` if wrk is installed; else bench/pyload.py with the same arguments.
    Either prints one ``BENCH_RESULT {json}`` line. Bounded: killed after duration + 30 s.
    """
    url = server.base_url + path
    wrk = wrk_path()
    seconds = max(1, round(duration_s))
    if wrk is not None:
        argv = [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            url,
            "--",
            *script_args,
        ]
    else:
        argv = [
            sys.executable,
            str(BENCH_DIR / "pyload.py"),
            url,
            str(seconds),
            str(connections),
            *script_args,
        ]
    server.check_alive()
    cpu_before = server.cpu_s()
    core_before = cpu_ticks(SERVER_CPU)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(
            pinned(LOADGEN_CPU, argv), capture_output=True, text=True, timeout=seconds + 30
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"load generator did not finish in {seconds + 30} s") from exc
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = server.cpu_s() - cpu_before
    core_after = cpu_ticks(SERVER_CPU)
    core_total = core_after[1] - core_before[1]
    core_busy = 100 * (core_after[0] - core_before[0]) / core_total if core_total else 0.0
    server.check_alive()
    line = next((x for x in done.stdout.splitlines() if x.startswith(RESULT_PREFIX)), None)
    if done.returncode != 0 or line is None:
        raise BenchError(
            f"load generator failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
            f"{done.stderr[-2000:]}"
        )
    if done.stderr.strip():
        print(done.stderr.strip(), file=sys.stderr)
    r = json.loads(line[len(RESULT_PREFIX) :])
    loadgen_cpu = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    return LoadResult(
        requests=r["requests"],
        duration_s=r["duration_us"] / 1e6,
        ok2xx=r["ok2xx"],
        non2xx=r["non2xx"],
        accepted=r["accepted"],
        duplicates=r["duplicates"],
        unparsed=r["unparsed"],
        socket_errors=r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"],
        lat_p50_ms=r["lat_p50_us"] / 1000,
        lat_p99_ms=r["lat_p99_us"] / 1000,
        loadgen_cpu_s=loadgen_cpu,
        server_cpu_s=server_cpu,
        server_core_busy_pct=core_busy,
    )


def run_main(main: Callable[[], int]) -> NoReturn:
    """A benchmark's entry point: its exit status, 2 when the run is invalid (BenchError),
    130 when interrupted."""
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"\nBENCHMARK INVALID: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
