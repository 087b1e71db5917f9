"""Where photos sent on Zalo may be downloaded from: the platform's hosts only, never this
machine or its private network (a message naming `http://127.0.0.1:8080/…` or a cloud metadata
address must not make the server fetch it).

A host passes when it is on the `zalo_media_hosts` list (a name also covers its subdomains; an
entry may carry a port) and, for a name, when every address it resolves to is public. An IP
address on the list is trusted as it is: that is how a test's fake CDN on loopback, or a local
mirror, is allowed, explicitly. The download itself resolves names through `PublicResolver`,
so a name that changes its answer after the check still cannot lead to a private address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from bot.core.messages import FetchRefused


def host_entries(setting: str) -> list[str]:
    return [entry.strip().lower().rstrip(".") for entry in setting.split(",") if entry.strip()]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(text: str) -> bool:
    """Not loopback, private, link-local, shared, reserved, multicast or unspecified."""
    address = _ip(text)
    return address is not None and address.is_global and not address.is_multicast


def listed(host: str, port: int | None, entries: list[str]) -> bool:
    for entry in entries:
        name, entry_port = entry, ""
        if entry.count(":") == 1:  # `host:port` (an IPv6 entry is written without a port)
            name, entry_port = entry.split(":")
        if entry_port and entry_port != str(port):
            continue
        if host == name or (_ip(name) is None and host.endswith("." + name)):
            return True
    return False


async def check_source(url: str, hosts_setting: str) -> None:
    """Raises FetchRefused unless `url` may be downloaded (see the module's docstring); a
    name that cannot be resolved raises OSError, like any network failure."""
    try:
        parsed = URL(url)
    except ValueError as error:
        raise FetchRefused(f"not a web address: {url[:80]!r}") from error
    host = (parsed.host or "").lower().rstrip(".")
    if parsed.scheme not in ("http", "https") or not host:
        raise FetchRefused(f"not a web address: {url[:80]!r}")
    if not listed(host, parsed.port, host_entries(hosts_setting)):
        raise FetchRefused(f"{host} is not one of the platform's media hosts")
    if _ip(host) is not None:
        return  # listed as an address: trusted as it is
    found = await asyncio.get_running_loop().getaddrinfo(host, parsed.port, type=socket.SOCK_STREAM)
    private = sorted({str(info[4][0]) for info in found if not is_public(str(info[4][0]))})
    if not found or private:
        raise FetchRefused(f"{host} resolves to a private address {private[:1]}")


class PublicResolver(AbstractResolver):
    """Names resolve to their public addresses only (the last word against DNS rebinding)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = [r for r in await self._inner.resolve(host, port, family) if is_public(r["host"])]
        if not found:
            raise OSError(f"{host} resolves to no public address")
        return found

    async def close(self) -> None:
        await self._inner.close()
