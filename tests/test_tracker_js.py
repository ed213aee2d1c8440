"""The tracker's own JavaScript checks, part of the one test command: its node unit tests
(command queue, cookies, retries), eslint and prettier, with the versions package-lock.json pins.

eslint and prettier need ``npm ci`` first (``.ci/run`` does it): without node_modules (or node)
they are skipped with the reason, or fail when ``CI`` is set, since CI must run them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
