"""Integrator callback URLs without SSRF: checked when registered and again at each send.

- Registration: https only (http in dev mode), a public-looking host name or address, no
  credentials in the URL, no internal names (`localhost`, `postgres`, `*.internal` …).
- Send: the host is resolved at send time; if any address is loopback, private, link-local,
  multicast, reserved or unspecified the callback is refused. The connection goes to the very
  address that was vetted (no second lookup, so DNS rebinding cannot swap it), redirects are not
  followed and no proxy is taken from the environment (trust_env=False).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

Resolver = Callable[[str, int], Awaitable[list[str]]]
INTERNAL_SUFFIXES = (".local", ".localhost", ".internal", ".intranet", ".lan", ".home", ".corp")


class UnsafeCallback(ValueError):
    """A callback URL that could reach inside the deployment's network."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the host name resolves to now."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return sorted({str(info[4][0]) for info in infos})


def forbidden_address(address: str) -> str | None:
    """Why an address must not be called back, or None when it is a public unicast address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for test, why in (
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (ip.is_unspecified, "unspecified"),
        (not ip.is_global, "not globally routable"),
    ):
        if test:
            return f"{why} address"
    return None


def check_callback_url(url: str, *, dev_mode: bool) -> None:
    """Raise UnsafeCallback unless the URL may be registered as a callback."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "http://]x": an unbalanced IPv6 bracket
        raise UnsafeCallback("callback_url is not a valid URL") from None
    allowed = ("https", "http") if dev_mode else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeCallback("callback_url must use https")
    if parts.username or parts.password:
        raise UnsafeCallback("callback_url must not carry credentials")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeCallback("callback_url needs a host")
    try:
        port = parts.port
    except ValueError:
        raise UnsafeCallback("callback_url has an invalid port") from None
    if port == 0:
        raise UnsafeCallback("callback_url has an invalid port")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if "." not in host or host == "localhost" or host.endswith(INTERNAL_SUFFIXES):
            raise UnsafeCallback("callback_url names an internal host") from None
        return
    why = forbidden_address(host)
    if why:
        raise UnsafeCallback(f"callback_url points at a {why}")


class GuardedTransport(httpx.AsyncBaseTransport):
    """Resolves and vets the callback's host at send time, then connects to that address."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        resolver: Resolver = system_resolver,
        *,
        pin: bool = True,
    ) -> None:
        self.inner, self.resolver, self.pin = inner, resolver, pin

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Refuse internal addresses; otherwise send to the vetted address."""
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        try:
            addresses = await self.resolver(host, port)
        except OSError:
            raise httpx.ConnectError("callback host does not resolve", request=request) from None
        if not addresses:
            raise httpx.ConnectError("callback host does not resolve", request=request)
        for address in addresses:
            if forbidden_address(address):
                raise UnsafeCallbackError("callback host resolves to an internal address", request)
        if self.pin:
            ip = addresses[0]
            request.url = request.url.copy_with(host=ip)
            request.headers["Host"] = host if port in (80, 443) else f"{host}:{port}"
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.inner.aclose()


class UnsafeCallbackError(httpx.ConnectError):
    """The callback was refused before connecting (SSRF guard)."""

    def __init__(self, message: str, request: httpx.Request) -> None:
        super().__init__(message, request=request)


def callback_client(
    timeout_s: float,
    transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver | None = None,
) -> httpx.AsyncClient:
    """The HTTP client for callbacks: guarded, no redirects, no proxies from the environment."""
    guarded = GuardedTransport(
        transport or httpx.AsyncHTTPTransport(trust_env=False, retries=0),
        resolver or system_resolver,
        pin=transport is None,  # an injected (test) transport gets the original URL
    )
    return httpx.AsyncClient(
        transport=guarded, timeout=timeout_s, follow_redirects=False, trust_env=False
    )
