"""The tracker's own JavaScript checks, part of the one test command: its node unit tests
(command queue, cookies, retries), eslint and prettier, with the versions package-lock.json pins;
and that the engine's constants reach the scripts through their config, not repeated literals.

eslint and prettier need ``npm ci`` first (``.ci/run`` does it): without node_modules (or node)
they are skipped with the reason, or fail when ``CI`` is set, since CI must run them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from engagement import constants as C
from engagement.api.routes import ROUTES
from engagement.monitoring.tracker import ENDPOINTS, build_tracker

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "engagement" / "monitoring" / "tracker"
TIMEOUT_S = 300  # generous: the machine may be shared by several test runs


def _ready(*, modules: bool) -> None:
    missing = [tool for tool in ("node", "npx") if shutil.which(tool) is None]
    if modules and not (ROOT / "node_modules" / ".bin" / "eslint").exists():
        missing.append("node_modules (run `npm ci`)")
    if not missing:
        return
    reason = "the tracker's JavaScript checks need " + ", ".join(missing)
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _run(*command: str, modules: bool = True) -> None:
    _ready(modules=modules)
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


def test_node_unit_tests_pass() -> None:
    _run("node", "--test", "tests/js/", modules=False)  # node's own runner: no package needed


def test_eslint_passes() -> None:
    _run("npx", "--no-install", "eslint", "--max-warnings", "0")


def test_prettier_formatted() -> None:
    _run("npx", "--no-install", "prettier", "--check", ".")


def test_the_scripts_take_the_engines_constants_from_their_config() -> None:
    """The numbers and paths the engine also knows reach the scripts through the config that
    tracker.py passes in; none is written again in the scripts' source."""
    served = build_tracker({}).body.decode()
    config = json.loads(re.search(r"\(window,document,(\{.*\})\);?$", served)[1])
    paths = {route.name: route.path for route in ROUTES}
    assert config["paths"] == {name: paths[route] for name, route in ENDPOINTS}
    assert config["gvidCookieMaxAgeS"] == C.VISITOR_COOKIE_MAX_AGE_S == 2 * 365 * 86_400
    assert config["cookiePrefix"] == C.TRACKER_COOKIE_PREFIX
    assert config["retryBaseMs"] == C.TRACKER_RETRY_BASE_MS
    sources = {p.name: p.read_text() for p in SOURCES.glob("*.js")}
    sources.update({p.name: p.read_text() for p in SOURCES.parent.glob("*.js")})  # engage.js
    assert set(sources) >= {"core.js", "cookies.js", "transport.js", "engage.js"}
    repeated = {
        (name, value)
        for name, text in sources.items()
        for value in [*config["paths"].values(), C.TRACKER_COOKIE_PREFIX]
        + [str(v) for v in config.values() if isinstance(v, int) and v > 1000]
        if value.replace("{attemptID}", "") in text
    }
    assert repeated == set()
