"""The client's address and scheme behind reverse proxies (X-Forwarded-For,
X-Forwarded-Proto), trusting exactly the proxies we run behind.

Each proxy *appends* the address it received the request from to
X-Forwarded-For; everything to the left of that was written by the client and
proves nothing. So the client is the right-most entry that is not one of our
own proxies, and only when the connecting peer is one of them.

FORWARDED_ALLOW_IPS lists the proxies: addresses and networks
(``10.250.94.0/24``), or ``*`` for "whatever peer connects", for platforms
whose proxy is the only way in and has no fixed address (Render). ``*``
trusts the peer only, never an address inside the header: the client is
then the right-most entry, the one the platform's proxy appended, and a
forged ``X-Forwarded-For: 1.2.3.4`` stays to the left of it, ignored.

Addresses come out in one form, the peer's own included: an IPv4-mapped
``::ffff:1.2.3.4`` (an IPv4 client of a dual-stack listener) is ``1.2.3.4``,
never an IPv6 address whose /64 every IPv4 client would share.

Done here rather than by uvicorn's ProxyHeadersMiddleware (turned off in
api/serving.py), whose ``*`` takes the left-most entry: the one the client
wrote.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import TypeAlias

from starlette.types import ASGIApp, Receive, Scope, Send

Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(raw: str) -> Address | None:
    """An address from a header entry (``1.2.3.4``, ``1.2.3.4:5678``,
    ``2001:db8::1``, ``[2001:db8::1]:443``), or None when it is none.
    Short entries are remembered (the most recent 4,096, at most 64
    characters each): the same peers and proxies come back on every
    request, and parsing them is a measurable share of one."""
    return _parse_remembered(raw) if len(raw) <= 64 else _parse(raw)


def _parse(raw: str) -> Address | None:
    value = raw.strip()
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


_parse_remembered = functools.lru_cache(maxsize=4096)(_parse)


class TrustedProxies:
    """The proxies of FORWARDED_ALLOW_IPS."""

    def __init__(self, spec: str) -> None:
        items = [item.strip() for item in spec.split(",") if item.strip()]
        self.any_peer = "*" in items
        self.networks: list[Network] = [
            ipaddress.ip_network(item, strict=False) for item in items if item != "*"
        ]

    def is_proxy(self, address: Address | None) -> bool:
        """Whether ``address`` is one of the listed proxies (``*`` aside)."""
        return address is not None and any(address in network for network in self.networks)

    def trusts_peer(self, peer: str) -> bool:
        """Whether the connecting peer's forwarded headers are believed."""
        return self.any_peer or self.is_proxy(parse_address(peer))

    def client(self, peer: str, forwarded_for: str) -> str:
        """The client's address for a request from ``peer`` carrying this
        X-Forwarded-For: the right-most entry that is not a listed proxy."""
        own = parse_address(peer)
        if own is not None:
            peer = own.compressed
        if not self.trusts_peer(peer):
            return peer
        hops = [parse_address(entry) for entry in forwarded_for.split(",") if entry.strip()]
        for hop in reversed(hops):
            if hop is None:
                # Not an address where a proxy of ours would have written
                # one: believe nothing further left.
                return peer
            if not self.is_proxy(hop):
                return hop.compressed
        # Every hop is a proxy of ours (or there is no header): the left-most.
        return hops[0].compressed if hops and hops[0] is not None else peer


class ForwardedClient:
    """Rewrite the ASGI scope's ``client`` and ``scheme`` from the forwarded
    headers of a trusted proxy, before anything (logs, throttles) reads them."""

    def __init__(self, app: ASGIApp, *, trusted: str) -> None:
        self.app = app
        self.proxies = TrustedProxies(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] in {"http", "websocket"} and client:
            peer, port = client
            trusted = self.proxies.trusts_peer(peer)
            forwarded: list[bytes] = []
            proto = b""
            if trusted:
                for name, value in scope["headers"]:
                    if name == b"x-forwarded-for":
                        forwarded.append(value)
                    elif name == b"x-forwarded-proto":
                        proto = value
            # Untrusted, the peer's address only takes its canonical form.
            address = self.proxies.client(peer, b",".join(forwarded).decode("latin-1"))
            if trusted or address != peer:
                scope = {**scope, "client": (address, port)}
            scheme = proto.decode("latin-1").rsplit(",", 1)[-1].strip().lower()
            if trusted and scope["type"] == "http" and scheme in {"http", "https"}:
                scope["scheme"] = scheme
        await self.app(scope, receive, send)
