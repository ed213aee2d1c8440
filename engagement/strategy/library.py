"""The strategies folder as the engine sees it: the last good version of every file,
reloaded when a file changes, with the errors of the ones that do not load."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from .engine import StrategySet
from .loader import (
    LoadedFile,
    StrategyError,
    StrategyFileError,
    _display,
    build_set,
    cross_check,
    invite_templates,
    load_file,
    strategy_files,
)

log = logging.getLogger(__name__)

RELOAD_POLL_S = 0.5  # edits take effect within 2 s; polling works on every file system

Stamp = tuple[int, int, int]


def _stamp(path: Path) -> Stamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class StrategyLibrary:
    def __init__(self, folder: Path, invites: Path | None = None) -> None:
        self.folder = folder
        self.invites = invites  # offers must name a template there
        self.good: dict[Path, LoadedFile] = {}
        self.errors: dict[Path, list[StrategyError]] = {}
        self._stamps: dict[Path, Stamp] = {}
        self._templates: list[str] | None = None  # invites/ as last checked against
        self.current = StrategySet()
        self.listeners: list[Callable[[StrategySet], None]] = []
        self.reloads = 0

    def all_errors(self) -> list[StrategyError]:
        return [e for path in sorted(self.errors) for e in self.errors[path]]

    def scan(self) -> bool:
        """Reload what changed on disk; True when the running set changed. When the templates
        of invites/ change, every file is read again: an offer may name one that went."""
        present = {p: s for p in strategy_files(self.folder) if (s := _stamp(p)) is not None}
        changed = [p for p, s in present.items() if self._stamps.get(p) != s]
        removed = [p for p in self._stamps if p not in present]
        templates = invite_templates(self.invites) if self.invites is not None else []
        if templates != self._templates:
            self._templates = templates
            changed = list(present)
        if not changed and not removed:
            return False
        self._stamps = present
        for path in removed:
            self.good.pop(path, None)
            self.errors.pop(path, None)
            log.info("strategy file %s removed", path.name)
        candidate = dict(self.good)
        for path in changed:
            shown = _display(path, self.folder)
            try:
                candidate[path] = load_file(path, shown)
                self.errors.pop(path, None)
            except StrategyFileError as exc:
                self._report(path, exc.errors)
        for path, problems in cross_check(candidate, self.folder, self.invites).items():
            self._report(path, problems)
            if path in self.good:
                candidate[path] = self.good[path]  # last good version keeps running
            else:
                del candidate[path]
        self.good = candidate
        self.current = build_set(candidate)
        self.reloads += 1
        log.info(
            "strategies loaded: %d strategies, %d categories, %d declared events from %d files"
            "%s",
            len(self.current), len(self.current.categories), len(self.current.declared_events),
            len(candidate), f"; {len(self.all_errors())} errors" if self.errors else "",
        )  # fmt: skip
        for listener in self.listeners:
            listener(self.current)
        return True

    def _report(self, path: Path, errors: list[StrategyError]) -> None:
        self.errors[path] = errors
        kept = " (its last good version keeps running)" if path in self.good else ""
        for error in errors:
            log.error("strategy file error: %s%s", error, kept)

    async def watch(self, poll_s: float = RELOAD_POLL_S) -> None:
        while True:
            await asyncio.sleep(poll_s)
            try:
                self.scan()  # a few stat() calls; files are read only when they changed
            except Exception:
                log.exception("scanning %s failed", self.folder)
