"""The SSRF guard of outbound webhooks: which URLs a user may register, and which addresses a
delivery may connect to.

A URL is checked when it is registered (its shape, and any address it names or resolves to)
and again at every delivery, after DNS: the delivery then connects to the very address that
was vetted (the hostname goes in the Host header and TLS SNI), so a name that resolves to a
public address for the check and to 127.0.0.1 for the connection (DNS rebinding) cannot slip
through. Redirects are never followed, so a vetted receiver cannot bounce a delivery inward.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from coffer.errors import AppError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})
MAX_URL_LENGTH = 2048
REGISTRATION_DNS_TIMEOUT_SECONDS = 2.0
"""Registering a URL whose name does not resolve in time is allowed: deliveries check again."""

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6 (a private address, so named here)
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure's platform endpoint (a public address)
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class WebhookTargetRefused(AppError):
    code = "webhook_target_refused"
    http_status = 422
    default_message = "Webhook URLs must be http(s) URLs of public hosts, without credentials"


@dataclass(frozen=True, slots=True)
class Target:
    """Where one delivery connects: the vetted address, and the name it stands for."""

    scheme: str
    hostname: str
    port: int
    address: IPAddress
    path: str


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, or NAT64), which is what gets reached."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def refusal_reason(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a delivery may not connect to `address`, or None when it may."""
    address = _embedded_ipv4(address)
    if address in METADATA_ADDRESSES:
        return "metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_link_local:
        return "link_local"
    if address.is_loopback:
        return None if allow_private else "loopback"
    if address.is_private:
        return None if allow_private else "private"
    if not address.is_global:
        return "reserved"
    return None


def _refused(reason: str) -> WebhookTargetRefused:
    return WebhookTargetRefused(details={"reason": reason})


def parse_url(url: str) -> SplitResult:
    """The URL's parts, if its shape is acceptable: http(s), a host, no user or password."""
    if len(url) > MAX_URL_LENGTH:
        raise _refused("too_long")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise _refused("malformed") from None
    if parts.scheme not in ALLOWED_SCHEMES:
        raise _refused("scheme")
    if "@" in parts.netloc:
        raise _refused("credentials")
    if not parts.hostname:
        raise _refused("no_host")
    return parts


def _literal_address(hostname: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(hostname)
    except ValueError:
        return None


async def _resolve(hostname: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        hostname, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _check_all(addresses: list[IPAddress], *, allow_private: bool) -> None:
    for address in addresses:
        reason = refusal_reason(address, allow_private=allow_private)
        if reason is not None:
            raise _refused(reason)


async def check_registration(url: str, *, allow_private: bool) -> None:
    """Refuse a URL that could only ever reach a forbidden address (422
    `webhook_target_refused`): checked again, after DNS, at every delivery."""
    parts = parse_url(url)
    hostname = parts.hostname or ""
    literal = _literal_address(hostname)
    if literal is not None:
        _check_all([literal], allow_private=allow_private)
        return
    try:
        async with asyncio.timeout(REGISTRATION_DNS_TIMEOUT_SECONDS):
            addresses = await _resolve(hostname, _port(parts))
    except (OSError, TimeoutError, UnicodeError):
        return
    _check_all(addresses, allow_private=allow_private)


def _port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


async def resolve_target(url: str, *, allow_private: bool) -> Target:
    """The address a delivery to `url` connects to: every address the name resolves to must be
    allowed (one forbidden answer refuses it), and the first is used."""
    parts = parse_url(url)
    hostname = parts.hostname or ""
    literal = _literal_address(hostname)
    addresses = [literal] if literal is not None else await _resolve(hostname, _port(parts))
    if not addresses:
        raise _refused("no_address")
    _check_all(addresses, allow_private=allow_private)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, hostname, _port(parts), addresses[0], path)
