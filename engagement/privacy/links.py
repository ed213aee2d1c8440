"""Link tokens: a visit carried across the company's own domains without third-party cookies.

The tracker asks for a token when the visitor follows a link (or posts a form) to a linked
domain and adds it to the URL; the tracker on the other domain redeems it and continues the
same visit. A token is ``<id>.<expiry>.<signature>``: 16 random bytes, the expiry in epoch
seconds, and an HMAC-SHA256 of both under a key derived from the API keys (every node of one
deployment shares them). It names no visit: the engine holds what it stands for until it
expires, so URLs, logs and referrers carry no identifier, and it can be used once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

KEY_LABEL = b"engagement link token v1"  # keeps these signatures apart from any other use
MAX_LIVE_TOKENS = 100_000  # per node: far more than links followed within a token's life
TOKEN_PATTERN = re.compile(r"^([A-Za-z0-9_-]{22})\.(\d{1,12})\.([A-Za-z0-9_-]{22})$")


@dataclass(frozen=True, slots=True)
class Link:
    """What a token stands for: the visit, and the visitor's chat session key if any."""

    visit_id: str
    global_visit_id: str
    key: str | None
    issued_to: str  # the origin of the page that asked for it


@dataclass(slots=True)
class _Issued:
    link: Link
    expires_ms: int
    used: bool = field(default=False)


class LinkRefused(Exception):
    """Why a token cannot be redeemed: ``status``, a stable ``code`` and the message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def link_key(api_keys: Iterable[bytes]) -> bytes:
    """The signing key: from the configured API keys, so that nodes agree without a new secret
    (rotating the keys voids tokens in flight, which live two minutes)."""
    return hmac.new(KEY_LABEL, b"\0".join(sorted(api_keys)), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def on_linked_domain(origin: str, domains: Iterable[str]) -> bool:
    """Whether the page at ``origin`` is on one of ``domains`` or a subdomain of one."""
    host = (urlsplit(origin).hostname or "").lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


class SharedTokens(Protocol):
    """Where issued tokens are held for every node (Redis with redis_url): what a token stands
    for, taken once (a second take says it was used)."""

    async def put(self, token_id: str, link: str, ttl_ms: int) -> None: ...

    async def take(self, token_id: str) -> tuple[str | None, bool]: ...  # (link, used before)

    async def links(self) -> list[str]: ...

    async def drop(self, token_ids: list[str]) -> int: ...


class LinkTokens:
    """Issues and redeems tokens; the issued ones are held until expiry, in this process or,
    with ``shared`` (several nodes), in Redis, so a link issued on one node is redeemed on any."""

    def __init__(self, key: bytes, ttl_s: float) -> None:
        self._key = key
        self.ttl_ms = int(ttl_s * 1000)
        self._issued: dict[str, _Issued] = {}  # id -> link; insertion order = expiry order
        self.shared: SharedTokens | None = None
        self.issued_total = 0
        self.redeemed_total = 0
        self.refused_total = 0

    def _sign(self, token_id: str, exp_s: int) -> str:
        mac = hmac.new(self._key, f"{token_id}.{exp_s}".encode(), hashlib.sha256).digest()
        return _b64(mac[:16])

    async def issue(self, link: Link, now_ms: int) -> tuple[str, int]:
        """A new token for ``link`` and when it expires (epoch ms)."""
        token_id = _b64(secrets.token_bytes(16))
        exp_s = (now_ms + self.ttl_ms) // 1000
        if self.shared is not None:
            await self.shared.put(token_id, json.dumps(asdict(link)), exp_s * 1000 - now_ms)
        else:
            self._sweep(now_ms)
            self._issued[token_id] = _Issued(link, exp_s * 1000)
        self.issued_total += 1
        return f"{token_id}.{exp_s}.{self._sign(token_id, exp_s)}", exp_s * 1000

    async def redeem(self, token: str, now_ms: int) -> Link:
        """What ``token`` stands for, once; :class:`LinkRefused` for a token that is not one,
        forged, expired, unknown here or used already."""
        try:
            return await self._redeem(token, now_ms)
        except LinkRefused:
            self.refused_total += 1
            raise

    async def _taken(self, token_id: str) -> Link:
        if self.shared is not None:
            text, used = await self.shared.take(token_id)
            if used:
                raise LinkRefused(409, "token_used", "token: already used")
            if text is None:
                raise LinkRefused(403, "token_unknown", "token: not issued here, or forgotten")
            return Link(**json.loads(text))
        issued = self._issued.get(token_id)
        if issued is None:
            raise LinkRefused(403, "token_unknown", "token: not issued here, or forgotten")
        if issued.used:
            raise LinkRefused(409, "token_used", "token: already used")
        issued.used = True
        return issued.link

    async def _redeem(self, token: str, now_ms: int) -> Link:
        found = TOKEN_PATTERN.match(token)
        if found is None:
            raise LinkRefused(400, "invalid_input", "token: not a link token")
        token_id, exp_text, signature = found.groups()
        exp_s = int(exp_text)
        if not hmac.compare_digest(signature, self._sign(token_id, exp_s)):
            raise LinkRefused(403, "token_forged", "token: the signature does not match")
        if exp_s * 1000 <= now_ms:
            raise LinkRefused(410, "token_expired", "token: expired")
        link = await self._taken(token_id)
        self.redeemed_total += 1
        return link

    async def forget_visits(self, visit_ids: Iterable[str]) -> int:
        """A visitor's erasure: their tokens go (and cannot be redeemed)."""
        gone = set(visit_ids)
        if self.shared is not None:
            held = await self.shared.links()
            mine = [t for t, text in _parsed(held) if text.get("visit_id") in gone]
            return await self.shared.drop(mine) if mine else 0
        ids = [t for t, i in self._issued.items() if i.link.visit_id in gone]
        for token_id in ids:
            del self._issued[token_id]
        return len(ids)

    async def of_visits(self, visit_ids: Iterable[str]) -> list[dict[str, object]]:
        """The visitor's tokens still held (an export): expiry and state, never the key."""
        wanted = set(visit_ids)
        if self.shared is not None:
            held = _parsed(await self.shared.links())
            return [{"visitID": link["visit_id"], "issuedTo": link.get("issued_to")}
                    for _, link in held if link.get("visit_id") in wanted]  # fmt: skip
        return [
            {"visitID": i.link.visit_id, "issuedTo": i.link.issued_to,
             "expiresAt": i.expires_ms, "used": i.used}
            for i in self._issued.values() if i.link.visit_id in wanted
        ]  # fmt: skip

    def _sweep(self, now_ms: int) -> None:
        issued = self._issued
        while issued:
            token_id, first = next(iter(issued.items()))
            if first.expires_ms > now_ms and len(issued) < MAX_LIVE_TOKENS:
                break
            del issued[token_id]


def _parsed(held: list[str]) -> list[tuple[str, dict[str, object]]]:
    """``token_id link-json`` entries (used ones start with ``u``), read leniently."""
    out = []
    for entry in held:
        token_id, _, text = entry.partition(" ")
        try:
            link = json.loads(text.removeprefix("u"))
        except ValueError:
            continue
        if isinstance(link, dict):
            out.append((token_id, link))
    return out
