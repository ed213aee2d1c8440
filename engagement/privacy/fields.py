"""The allow-list of personal fields: what of ``UserInfo`` and ``SignIn`` the engine keeps."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

PERSONAL_EVENTS = frozenset({"UserInfo", "SignIn"})


class FieldFilter:
    """Drops, at ingest, the fields of ``UserInfo``/``SignIn`` data the allow-list does not
    name (None: every field is kept), and counts them for ``/metrics``."""

    def __init__(self, allowed: Collection[str] | None) -> None:
        self.allowed = frozenset(allowed) if allowed is not None else None
        self.dropped_total = 0

    def keep(self, event_name: str, data: dict[str, Any]) -> dict[str, Any]:
        allowed = self.allowed
        if allowed is None or event_name not in PERSONAL_EVENTS:
            return data
        kept = {k: v for k, v in data.items() if k in allowed}
        self.dropped_total += len(data) - len(kept)
        return kept
