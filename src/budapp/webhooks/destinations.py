"""Where a webhook may send: a guard against server-side request forgery. budapp resolves the
host itself, refuses private, loopback, link-local and other non-public addresses unless the
operator allows them, and connects to the address it checked (no second lookup that a
rebinding DNS server could answer differently)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(Exception):
    """The URL's host is not a public address (or cannot be resolved)."""


def is_public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Destination:
    """The request target pinned to one checked address."""

    url: httpx.URL
    host_header: str
    sni_hostname: str | None


async def resolve(url: str, *, allow_private: bool) -> Destination:
    parsed = httpx.URL(url)
    host = parsed.host
    if not host:
        raise DestinationRefused("the URL has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = await _addresses(host, port)
    if not allow_private:
        refused = [str(a) for a in addresses if not is_public(a)]
        if refused:
            raise DestinationRefused(
                f"{host} resolves to a non-public address ({', '.join(refused)}); set "
                "BUDAPP_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS=true to allow it"
            )
    chosen = addresses[0]
    return Destination(
        url=parsed.copy_with(host=str(chosen)),
        host_header=parsed.netloc.decode("ascii"),
        sni_hostname=host if parsed.scheme == "https" and literal_address(host) is None else None,
    )


async def _addresses(host: str, port: int) -> list[Address]:
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise DestinationRefused(f"cannot resolve {host}: {exc}") from exc
    found = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not found:
        raise DestinationRefused(f"{host} has no address")
    return found
