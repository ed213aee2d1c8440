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
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
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


class LinkTokens:
    """Issues and redeems tokens; the issued ones are held (in this process) until expiry."""

    def __init__(self, key: bytes, ttl_s: float) -> None:
        self._key = key
        self.ttl_ms = int(ttl_s * 1000)
        self._issued: dict[str, _Issued] = {}  # id -> link; insertion order = expiry order
        self.issued_total = 0
        self.redeemed_total = 0
        self.refused_total = 0

    def _sign(self, token_id: str, exp_s: int) -> str:
        mac = hmac.new(self._key, f"{token_id}.{exp_s}".encode(), hashlib.sha256).digest()
        return _b64(mac[:16])

    def issue(self, link: Link, now_ms: int) -> tuple[str, int]:
        """A new token for ``link`` and when it expires (epoch ms)."""
        self._sweep(now_ms)
        token_id = _b64(secrets.token_bytes(16))
        exp_s = (now_ms + self.ttl_ms) // 1000
        self._issued[token_id] = _Issued(link, exp_s * 1000)
        self.issued_total += 1
        return f"{token_id}.{exp_s}.{self._sign(token_id, exp_s)}", exp_s * 1000

    def redeem(self, token: str, now_ms: int) -> Link:
        """What ``token`` stands for, once; :class:`LinkRefused` for a token that is not one,
        forged, expired, unknown here or used already."""
        try:
            return self._redeem(token, now_ms)
        except LinkRefused:
            self.refused_total += 1
            raise

    def _redeem(self, token: str, now_ms: int) -> Link:
        found = TOKEN_PATTERN.match(token)
        if found is None:
            raise LinkRefused(400, "invalid_input", "token: not a link token")
        token_id, exp_text, signature = found.groups()
        exp_s = int(exp_text)
        if not hmac.compare_digest(signature, self._sign(token_id, exp_s)):
            raise LinkRefused(403, "token_forged", "token: the signature does not match")
        if exp_s * 1000 <= now_ms:
            raise LinkRefused(410, "token_expired", "token: expired")
        issued = self._issued.get(token_id)
        if issued is None:
            raise LinkRefused(403, "token_unknown", "token: not issued here, or forgotten")
        if issued.used:
            raise LinkRefused(409, "token_used", "token: already used")
        issued.used = True
        self.redeemed_total += 1
        return issued.link

    def forget_visits(self, visit_ids: Iterable[str]) -> int:
        """A visitor's erasure: their tokens go (and cannot be redeemed)."""
        gone = set(visit_ids)
        ids = [t for t, i in self._issued.items() if i.link.visit_id in gone]
        for token_id in ids:
            del self._issued[token_id]
        return len(ids)

    def of_visits(self, visit_ids: Iterable[str]) -> list[dict[str, object]]:
        """The visitor's tokens still held (an export): expiry and state, never the key."""
        wanted = set(visit_ids)
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
