"""The client's address and scheme behind trusted proxies (api/proxy.py)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from api.proxy import ForwardedClient, TrustedProxies, parse_address

PROXY = "10.9.0.5"
NETWORK = "10.9.0.0/24"


# parse_address


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("  203.0.113.7\t", "203.0.113.7"),
        ("1.2.3.4:80", "1.2.3.4"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("[::ffff:1.2.3.4]:443", "1.2.3.4"),
        ("::1", "::1"),
    ],
)
def test_parse_address_reads_addresses_with_or_without_ports(raw: str, expected: str) -> None:
    assert parse_address(raw) == ipaddress.ip_address(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "unknown",
        '"; DROP TABLE users; --',
        "_hidden",
        "1.2.3",
        "256.1.1.1",
        "01.2.3.4",
        "1.2.3.4:80:90",
        "1.2.3.4/24",
        "[2001:db8::1",
        "[]:443",
        "[nope]:443",
        '"1.2.3.4"',
        "for=1.2.3.4",
        "example.com",
    ],
)
def test_parse_address_refuses_what_is_not_an_address(raw: str) -> None:
    assert parse_address(raw) is None


# TrustedProxies


def test_the_spec_lists_addresses_networks_and_star() -> None:
    proxies = TrustedProxies(" 10.9.0.5 , 2001:db8:aa::/48,,")
    assert not proxies.any_peer
    assert proxies.networks == [
        ipaddress.ip_network("10.9.0.5/32"),
        ipaddress.ip_network("2001:db8:aa::/48"),
    ]
    assert TrustedProxies("*").any_peer
    assert TrustedProxies("*").networks == []
    assert TrustedProxies("").networks == []
    assert not TrustedProxies("").any_peer


@pytest.mark.parametrize(
    ("spec", "peer", "trusted"),
    [
        ("10.9.0.5", "10.9.0.5", True),
        ("10.9.0.5", "10.9.0.6", False),
        (NETWORK, "10.9.0.255", True),
        (NETWORK, "10.9.1.1", False),
        (NETWORK, "::ffff:10.9.0.5", True),
        ("2001:db8:aa::/48", "2001:db8:aa:1::9", True),
        ("2001:db8:aa::/48", "2001:db8:ab::9", False),
        ("*", "198.51.100.1", True),
        ("*", "2001:db8::1", True),
        ("*", "not-an-address", True),
        (NETWORK, "not-an-address", False),
        ("", "127.0.0.1", False),
    ],
)
def test_which_peers_are_trusted(spec: str, peer: str, trusted: bool) -> None:
    assert TrustedProxies(spec).trusts_peer(peer) is trusted


def test_star_lists_no_proxy_inside_the_header() -> None:
    proxies = TrustedProxies("*")
    assert not proxies.is_proxy(ipaddress.ip_address("10.9.0.5"))
    assert not proxies.is_proxy(None)


@pytest.mark.parametrize(
    "forwarded_for",
    [
        "",
        "203.0.113.7",
        "6.6.6.6, 203.0.113.7",
        "203.0.113.7, 10.9.0.6",
        "unknown",
        "10.9.0.1",
        "2001:db8::1",
    ],
)
@pytest.mark.parametrize("spec", [PROXY, NETWORK, "2001:db8:aa::/48", "127.0.0.1"])
def test_an_untrusted_peer_is_the_client_whatever_it_says(spec: str, forwarded_for: str) -> None:
    assert TrustedProxies(spec).client("192.0.2.10", forwarded_for) == "192.0.2.10"


@pytest.mark.parametrize(
    ("spec", "peer"),
    [
        (PROXY, PROXY),
        (NETWORK, "10.9.0.77"),
        ("10.0.0.0/8, 2001:db8:aa::/48", "2001:db8:aa::5"),
        ("2001:db8:aa::/48", "2001:db8:aa:ffff::1"),
    ],
)
def test_a_trusted_peer_gives_the_right_most_entry(spec: str, peer: str) -> None:
    proxies = TrustedProxies(spec)
    assert proxies.client(peer, "203.0.113.7") == "203.0.113.7"
    assert proxies.client(peer, "2001:db8:1::7") == "2001:db8:1::7"
    assert proxies.client(peer, "198.51.100.1, 203.0.113.7") == "203.0.113.7"


def test_a_chain_of_trusted_proxies_gives_the_client() -> None:
    proxies = TrustedProxies("10.9.0.5, 10.9.0.6, 172.16.0.0/12")
    # client, proxy2, proxy1 (the peer is proxy0)
    assert proxies.client("10.9.0.5", "203.0.113.7, 172.16.3.4, 10.9.0.6") == "203.0.113.7"
    assert proxies.client("10.9.0.5", "6.6.6.6, 203.0.113.7, 172.16.3.4, 10.9.0.6") == (
        "203.0.113.7"
    )


def test_a_forged_left_part_is_ignored() -> None:
    proxies = TrustedProxies(NETWORK)
    assert proxies.client(PROXY, "6.6.6.6, 203.0.113.7") == "203.0.113.7"
    assert proxies.client(PROXY, "6.6.6.6,7.7.7.7,  203.0.113.7") == "203.0.113.7"
    # Forging one of our proxies' addresses on the left changes nothing either.
    assert proxies.client(PROXY, "10.9.0.1, 203.0.113.7") == "203.0.113.7"


def test_an_address_inside_a_trusted_network_is_skipped_only_at_the_right() -> None:
    """Entries of the listed networks are our proxies' hops: skipped from the
    right, so the first entry that is not one is the client."""
    proxies = TrustedProxies(NETWORK)
    assert proxies.client(PROXY, "203.0.113.7, 10.9.0.9, 10.9.0.8") == "203.0.113.7"


def test_when_every_hop_is_a_proxy_the_left_most_is_the_client() -> None:
    proxies = TrustedProxies(NETWORK)
    assert proxies.client(PROXY, "10.9.0.7, 10.9.0.8") == "10.9.0.7"


@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("1.2.3.4, 203.0.113.7", "203.0.113.7"),
        ("1.2.3.4, 5.6.7.8, 203.0.113.7", "203.0.113.7"),
        ("garbage, 203.0.113.7", "203.0.113.7"),
        ("1.2.3.4, 2001:db8:1::7", "2001:db8:1::7"),
    ],
)
def test_star_takes_the_right_most_entry(forwarded_for: str, expected: str) -> None:
    """``*``: the right-most entry is the one the platform's proxy appended;
    whatever the client wrote to its left is never the client."""
    assert TrustedProxies("*").client("10.201.4.3", forwarded_for) == expected


def test_star_never_takes_the_left_most_entry() -> None:
    proxies = TrustedProxies("*")
    for forged in ("1.2.3.4", "127.0.0.1", "10.201.4.3", "::1"):
        assert proxies.client("10.201.4.3", f"{forged}, 203.0.113.50") == "203.0.113.50"


@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [
        ("unknown, 203.0.113.7", "203.0.113.7"),
        ('"; DROP TABLE users; --, 203.0.113.7', "203.0.113.7"),
        (", 203.0.113.7", "203.0.113.7"),
        ("1.2.3.4,,203.0.113.7,", "203.0.113.7"),
        ("6.6.6.6, 203.0.113.7:80", "203.0.113.7"),
        ("6.6.6.6, [2001:db8::1]:443", "2001:db8::1"),
        ("6.6.6.6, 2001:DB8:0::1", "2001:db8::1"),
        ("6.6.6.6, ::ffff:1.2.3.4", "1.2.3.4"),
        ("6.6.6.6, [::ffff:1.2.3.4]:8080", "1.2.3.4"),
    ],
)
@pytest.mark.parametrize("spec", [NETWORK, "*"])
def test_entries_are_read_in_any_form_proxies_write(
    spec: str, forwarded_for: str, expected: str
) -> None:
    assert TrustedProxies(spec).client(PROXY, forwarded_for) == expected


@pytest.mark.parametrize(
    "forwarded_for",
    [
        "203.0.113.7, unknown",
        '203.0.113.7, "; DROP TABLE users; --',
        "203.0.113.7, 1.2.3.4:80:90",
        "203.0.113.7, 10.9.0.6, unknown",
        "unknown",
    ],
)
@pytest.mark.parametrize("spec", [NETWORK, "*"])
def test_garbage_where_a_proxy_writes_gives_the_peer(spec: str, forwarded_for: str) -> None:
    """Not an address where one of our proxies would have written one:
    nothing further left is believed, the client is the peer."""
    assert TrustedProxies(spec).client(PROXY, forwarded_for) == PROXY


def test_garbage_behind_a_listed_proxy_gives_the_peer() -> None:
    """Skipping our own hops from the right stops at the first garbage."""
    assert TrustedProxies(NETWORK).client(PROXY, "203.0.113.7, garbage, 10.9.0.6") == PROXY


@pytest.mark.parametrize("forwarded_for", ["", "  ", ",", " , ,"])
@pytest.mark.parametrize("spec", [NETWORK, "*"])
def test_no_forwarded_address_gives_the_peer(spec: str, forwarded_for: str) -> None:
    assert TrustedProxies(spec).client(PROXY, forwarded_for) == PROXY


@pytest.mark.parametrize("spec", [NETWORK, "*", "192.0.2.0/24"])
def test_the_peer_comes_out_in_its_canonical_form(spec: str) -> None:
    """An IPv4 client of a dual-stack listener is its IPv4 address, never
    ``::ffff:...`` (whose /64, ``::/64``, every IPv4 client would share)."""
    proxies = TrustedProxies(spec)
    assert proxies.client("::ffff:10.9.0.5", "") == "10.9.0.5"
    assert proxies.client("::ffff:192.0.2.10", "") == "192.0.2.10"
    assert proxies.client("2001:DB8:0:0:0:0:0:1", "") == "2001:db8::1"


def test_a_mapped_peer_of_a_listed_proxy_is_trusted() -> None:
    assert TrustedProxies(NETWORK).client("::ffff:10.9.0.5", "203.0.113.7") == "203.0.113.7"


def test_a_peer_that_is_no_address_is_kept_as_is() -> None:
    assert TrustedProxies(NETWORK).client("testclient", "203.0.113.7") == "testclient"


# ForwardedClient (the ASGI middleware)


class Capture:
    """An ASGI app that keeps the scope it is called with."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)

    @property
    def scope(self) -> Scope:
        [scope] = self.scopes
        return scope


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    pass


def http_scope(
    peer: str | None = PROXY,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    kind: str = "http",
    scheme: str = "http",
) -> Scope:
    scope: dict[str, Any] = {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": scheme,
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": headers or [],
        "client": (peer, 40000) if peer is not None else None,
        "server": ("10.9.0.2", 8000),
    }
    return scope


async def run(trusted: str, scope: Scope) -> Scope:
    app = Capture()
    await ForwardedClient(app, trusted=trusted)(scope, _receive, _send)
    return app.scope


async def test_middleware_rewrites_the_client_from_a_trusted_peer() -> None:
    headers = [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.7")]
    seen = await run(NETWORK, http_scope(PROXY, headers))
    assert seen["client"] == ("203.0.113.7", 40000)


async def test_middleware_ignores_the_headers_of_an_untrusted_peer() -> None:
    headers = [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")]
    original = http_scope("192.0.2.10", headers)
    seen = await run(NETWORK, original)
    assert seen["client"] == ("192.0.2.10", 40000)
    assert seen["scheme"] == "http"
    assert seen is original  # nothing to change: passed on as it came


async def test_middleware_normalises_a_mapped_untrusted_peer() -> None:
    seen = await run(NETWORK, http_scope("::ffff:192.0.2.10", [(b"x-forwarded-for", b"1.1.1.1")]))
    assert seen["client"] == ("192.0.2.10", 40000)


async def test_middleware_leaves_the_callers_scope_alone() -> None:
    original = http_scope(PROXY, [(b"x-forwarded-for", b"203.0.113.7")])
    seen = await run(NETWORK, original)
    assert seen["client"] == ("203.0.113.7", 40000)
    assert original["client"] == (PROXY, 40000)


async def test_middleware_joins_several_header_lines_in_order() -> None:
    headers = [
        (b"x-forwarded-for", b"6.6.6.6"),
        (b"x-request-id", b"abc"),
        (b"x-forwarded-for", b"203.0.113.7, 10.9.0.6"),
        (b"x-forwarded-for", b"10.9.0.7"),
    ]
    seen = await run(NETWORK, http_scope(PROXY, headers))
    assert seen["client"] == ("203.0.113.7", 40000)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([b"1.2.3.4", b"203.0.113.50"], "203.0.113.50"),
        ([b"203.0.113.50", b"1.2.3.4"], "1.2.3.4"),
        ([b"1.2.3.4, 5.6.7.8", b"203.0.113.50"], "203.0.113.50"),
        ([b"203.0.113.50", b""], "203.0.113.50"),
    ],
)
async def test_middleware_reads_the_last_line_as_the_right_most(
    lines: list[bytes], expected: str
) -> None:
    headers = [(b"x-forwarded-for", line) for line in lines]
    seen = await run("*", http_scope("10.201.4.3", headers))
    assert seen["client"] == (expected, 40000)


async def test_middleware_without_the_header_keeps_the_peer() -> None:
    seen = await run(NETWORK, http_scope(PROXY, [(b"x-forwarded-proto", b"https")]))
    assert seen["client"] == (PROXY, 40000)
    assert seen["scheme"] == "https"


async def test_middleware_with_star_takes_the_appended_address() -> None:
    headers = [(b"x-forwarded-for", b"1.2.3.4, 203.0.113.50")]
    seen = await run("*", http_scope("10.201.4.3", headers))
    assert seen["client"] == ("203.0.113.50", 40000)


async def test_middleware_with_garbage_at_the_right_keeps_the_peer() -> None:
    headers = [(b"x-forwarded-for", b"203.0.113.7, unknown")]
    seen = await run(NETWORK, http_scope(PROXY, headers))
    assert seen["client"] == (PROXY, 40000)


async def test_middleware_decodes_any_byte_without_failing() -> None:
    headers = [(b"x-forwarded-for", b"\xff\xfe, 203.0.113.7"), (b"x-forwarded-proto", b"\xff")]
    seen = await run(NETWORK, http_scope(PROXY, headers))
    assert seen["client"] == ("203.0.113.7", 40000)
    assert seen["scheme"] == "http"


@pytest.mark.parametrize(
    ("proto", "expected"),
    [
        (b"https", "https"),
        (b"HTTPS", "https"),
        (b" https ", "https"),
        (b"http", "http"),
        (b"http, https", "https"),  # the right-most, as for X-Forwarded-For
        (b"https, http", "http"),
        (b"ftp", "http"),
        (b"wss", "http"),
        (b"javascript", "http"),
        (b"", "http"),
    ],
)
async def test_forwarded_proto_from_a_trusted_peer_is_http_or_https(
    proto: bytes, expected: str
) -> None:
    seen = await run(NETWORK, http_scope(PROXY, [(b"x-forwarded-proto", proto)]))
    assert seen["scheme"] == expected


async def test_forwarded_proto_takes_the_last_header_line() -> None:
    headers = [(b"x-forwarded-proto", b"http"), (b"x-forwarded-proto", b"https")]
    seen = await run(NETWORK, http_scope(PROXY, headers))
    assert seen["scheme"] == "https"


async def test_forwarded_proto_can_say_http_behind_an_https_listener() -> None:
    seen = await run(NETWORK, http_scope(PROXY, [(b"x-forwarded-proto", b"http")], scheme="https"))
    assert seen["scheme"] == "http"


@pytest.mark.parametrize("spec", [NETWORK, "127.0.0.1"])
async def test_forwarded_proto_from_an_untrusted_peer_is_ignored(spec: str) -> None:
    seen = await run(spec, http_scope("192.0.2.10", [(b"x-forwarded-proto", b"https")]))
    assert seen["scheme"] == "http"


async def test_websocket_gets_the_client_but_keeps_its_scheme() -> None:
    headers = [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")]
    seen = await run(NETWORK, http_scope(PROXY, headers, kind="websocket", scheme="ws"))
    assert seen["client"] == ("203.0.113.7", 40000)
    assert seen["scheme"] == "ws"


async def test_a_scope_without_a_client_passes_untouched() -> None:
    original = http_scope(None, [(b"x-forwarded-for", b"203.0.113.7")])
    seen = await run("*", original)
    assert seen is original
    assert seen["client"] is None


async def test_lifespan_passes_untouched() -> None:
    original: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    seen = await run("*", original)
    assert seen is original
    assert seen == {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}


async def test_the_middleware_passes_receive_and_send_through() -> None:
    calls: list[tuple[Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append((receive, send))

    await ForwardedClient(app, trusted="*")(http_scope(), _receive, _send)
    assert calls == [(_receive, _send)]
