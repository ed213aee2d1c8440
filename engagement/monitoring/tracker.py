"""The tracker script as served: configured, minified, gzipped once, cached by ETag."""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import rjsmin

CONFIG_TOKEN = "__ENGAGEMENT_CONFIG__"


@dataclass(frozen=True, slots=True)
class TrackerScript:
    body: bytes  # minified JavaScript
    gzipped: bytes
    etag: str


def source(name: str = "tracker.js") -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _packed(text: str) -> TrackerScript:
    body = rjsmin.jsmin(text).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return TrackerScript(body, gzip.compress(body, compresslevel=9, mtime=0), etag)


def build_engage() -> TrackerScript:
    """engage.js: invitations and hand-off, loaded by the tracker with the first invitation."""
    return _packed(source("engage.js"))


def build_tracker(config: dict[str, Any]) -> TrackerScript:
    """The script with ``config`` inlined, ready to serve."""
    text = source()
    if text.count(CONFIG_TOKEN) != 1:
        raise RuntimeError(f"tracker.js must contain {CONFIG_TOKEN} exactly once")
    compact = {k: v for k, v in config.items() if v is not None}  # absent reads as unset
    return _packed(text.replace(CONFIG_TOKEN, json.dumps(compact, separators=(",", ":"))))


class ServedTracker:
    """The script being served now; rebuilt when its configuration changes."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.script = build_tracker(config)
        self.engage = build_engage()

    def rebuild(self, config: dict[str, Any]) -> None:
        self.script = build_tracker(config)
