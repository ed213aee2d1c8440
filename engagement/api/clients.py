"""Who is asking: the client's address and whether it came over TLS, believing proxies'
``X-Forwarded-For`` and ``X-Forwarded-Proto`` only when the proxy is a configured one."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyPolicy:
    """The ``trusted_proxies`` setting: addresses or CIDRs of the site's reverse proxies."""

    def __init__(self, trusted: Iterable[str]) -> None:
        self.networks: list[Network] = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def trusts(self, address: str | None) -> bool:
        if not self.networks or not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client_address(self, request: web.Request) -> str:
        """The peer, or behind trusted proxies the last address they were not themselves
        (the right end of X-Forwarded-For: a client can forge only what comes before)."""
        address = request.remote or ""
        if not self.trusts(address):
            return address
        forwarded = ",".join(request.headers.getall("X-Forwarded-For", []))
        for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
            if not self.trusts(hop):
                return hop
            address = hop
        return address

    def is_tls(self, request: web.Request) -> bool:
        """The request reached us over TLS, or reached a trusted proxy over TLS."""
        if request.secure:
            return True
        if not self.trusts(request.remote):
            return False
        proto = request.headers.get("X-Forwarded-Proto", "")
        return proto.split(",")[-1].strip().lower() == "https"
