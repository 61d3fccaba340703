import httpx
import pytest

from actor_maker.errors import FetchError, UnsafeURLError
from actor_maker.fetch import AddressPolicy, fetch_url, redact_url

from .helpers import sample_image
from .httpserver import LoopbackServer

PUBLIC = "93.184.216.34"  # only ever shown to the policy; nothing connects to it


@pytest.fixture(scope="module")
def _server():
    srv = LoopbackServer()
    yield srv
    srv.close()


@pytest.fixture
def server(_server):
    _server.routes.clear()
    _server.hits.clear()
    return _server


def pretend(mapping):
    """A resolver that answers from ``mapping`` (host → addresses)."""

    async def resolve(host, port):
        return mapping[host]

    return resolve


async def fetch(url, policy, **kw):
    async with httpx.AsyncClient() as client:
        return await fetch_url(
            url,
            policy=policy,
            client=client,
            max_bytes=kw.get("max_bytes", 10**7),
            timeout=kw.get("timeout", 5),
        )


async def test_public_host_is_fetched(server):
    server.body("/a.jpg", sample_image())
    policy = AddressPolicy(resolver=pretend({"127.0.0.1": [PUBLIC]}))
    data, ctype = await fetch(server.url("/a.jpg"), policy)
    assert data == sample_image() and ctype == "image/jpeg"


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "2130706433", "[::ffff:127.0.0.1]", "localhost", "0x7f.1"]
)
async def test_loopback_in_disguise_is_refused_before_any_request(server, host):
    server.body("/a.jpg", b"x")
    with pytest.raises(UnsafeURLError, match="private, loopback or link-local"):
        await fetch(server.url("/a.jpg", host=host), AddressPolicy())
    assert server.hits == []


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "192.168.0.9", "169.254.169.254", "fd00::1", "::1", "100.64.0.1", "0.0.0.0"],
)
async def test_private_addresses_refused_by_injected_resolver(server, address):
    policy = AddressPolicy(resolver=pretend({"127.0.0.1": [PUBLIC, address]}))
    with pytest.raises(UnsafeURLError):
        await fetch(server.url("/a.jpg"), policy)
    assert server.hits == []


@pytest.mark.parametrize(
    "address",
    [
        "::10.0.0.1",  # IPv4-compatible
        "::127.0.0.1",
        "::ffff:10.0.0.1",  # IPv4-mapped, ::ffff:0:0/96
        "::ffff:0:192.168.1.1",  # IPv4-translated (SIIT)
        "64:ff9b::10.0.0.1",  # NAT64 well-known prefix
        "64:ff9b::169.254.169.254",
        "64:ff9b::7f00:1",
        "64:ff9b:1::5db8:d822",  # local-use NAT64: private whatever it wraps
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "::",
    ],
)
async def test_ipv6_wrapping_a_private_ipv4_is_private(server, address):
    """Each form is only shown to the policy (injected resolver), never connected to."""
    policy = AddressPolicy(resolver=pretend({"127.0.0.1": [address]}))
    with pytest.raises(UnsafeURLError, match="private, loopback or link-local"):
        await policy.check(server.url("/a.jpg"))
    assert server.hits == []


@pytest.mark.parametrize(
    "address", ["64:ff9b::5db8:d822", "2002:5db8:d822::1", "::ffff:93.184.216.34"]
)
async def test_ipv6_wrapping_a_public_ipv4_stays_public(server, address):
    policy = AddressPolicy(resolver=pretend({"127.0.0.1": [address]}))
    await policy.check(server.url("/a.jpg"))  # no connection: the check only resolves
    assert server.hits == []


async def test_redirect_to_private_address_is_refused(server):
    server.redirect("/r", server.url("/a.jpg", host="localhost"))
    server.body("/a.jpg", b"secret")
    policy = AddressPolicy(resolver=pretend({"127.0.0.1": [PUBLIC], "localhost": ["127.0.0.1"]}))
    with pytest.raises(UnsafeURLError):
        await fetch(server.url("/r"), policy)
    assert server.hits == ["/r"]


async def test_redirect_to_public_host_is_followed(server):
    server.redirect("/r", "/a.jpg")
    server.body("/a.jpg", b"img")
    policy = AddressPolicy(resolver=pretend({"127.0.0.1": [PUBLIC]}))
    data, _ = await fetch(server.url("/r"), policy)
    assert data == b"img" and server.hits == ["/r", "/a.jpg"]


async def test_redirect_loop_gives_up(server):
    server.redirect("/r", "/r")
    with pytest.raises(FetchError, match="too many redirects"):
        await fetch(server.url("/r"), AddressPolicy(allow_private=True))


async def test_allow_private_lifts_the_address_rule(server):
    server.body("/a.jpg", b"img")
    data, _ = await fetch(server.url("/a.jpg"), AddressPolicy(allow_private=True))
    assert data == b"img"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://x/y.jpg",
        "gopher://x",
        "/relative.jpg",
        "http:///nohost",
        "http://user:pw@host/x.jpg",
    ],
)
async def test_bad_schemes_refused(url):
    with pytest.raises(UnsafeURLError):
        await fetch(url, AddressPolicy(allow_private=True))


async def test_size_cap(server):
    server.body("/big", b"x" * 5000)
    with pytest.raises(FetchError, match="larger than"):
        await fetch(server.url("/big"), AddressPolicy(allow_private=True), max_bytes=1000)


async def test_timeout(server):
    server.body("/slow", b"x", delay=2)
    with pytest.raises(FetchError, match="longer than"):
        await fetch(server.url("/slow"), AddressPolicy(allow_private=True), timeout=0.3)


async def test_http_error_status(server):
    with pytest.raises(FetchError, match="HTTP 404"):
        await fetch(server.url("/missing"), AddressPolicy(allow_private=True))


def test_redact_url_drops_query_and_credentials():
    assert (
        redact_url("https://u:p@b.s3.amazonaws.com/k.jpg?X-Amz-Signature=abc")
        == "https://b.s3.amazonaws.com/k.jpg"
    )
