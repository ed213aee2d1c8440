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


def source() -> str:
    return resources.files(__package__).joinpath("tracker.js").read_text(encoding="utf-8")


def build_tracker(config: dict[str, Any]) -> TrackerScript:
    """The script with ``config`` inlined, ready to serve."""
    text = source()
    if text.count(CONFIG_TOKEN) != 1:
        raise RuntimeError(f"tracker.js must contain {CONFIG_TOKEN} exactly once")
    compact = {k: v for k, v in config.items() if v is not None}  # absent reads as unset
    text = text.replace(CONFIG_TOKEN, json.dumps(compact, separators=(",", ":")))
    body = rjsmin.jsmin(text).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return TrackerScript(body, gzip.compress(body, compresslevel=9, mtime=0), etag)


class ServedTracker:
    """The script being served now; rebuilt when its configuration changes."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.script = build_tracker(config)

    def rebuild(self, config: dict[str, Any]) -> None:
        self.script = build_tracker(config)
