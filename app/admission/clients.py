"""Who a request is charged to: the signed-in user, else the client's address behind trusted proxies."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

from app.identity.principal import Principal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN = "unknown"
# One IPv6 host usually holds a whole /64, so a per-address budget would be free to multiply.
IPV6_GROUP_PREFIX = 64
# X-Forwarded-For hops examined from the right; past them the last trusted hop is the client.
MAX_FORWARDED_HOPS = 32
# Peers and address groups remembered per process: every request asks for both, and parsing costs more
# than the rest of the lookup. Peer strings are short (the socket's), so the caches stay small.
ADDRESS_CACHE_SIZE = 4096
# Subjects that are safe as they are inside a Redis key name; any other is hashed.
_SAFE_SUBJECT = re.compile(r"[A-Za-z0-9._@+-]{1,64}")
_IPV4_WITH_PORT = re.compile(r"(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}")
_IPV6_WITH_PORT = re.compile(r"\[([^\]]+)\](?::\d{1,5})?")


@dataclass(frozen=True)
class TrustedProxies:
    """The reverse proxies whose X-Forwarded-For is believed."""

    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        """Parse comma-separated addresses and CIDR networks; raise ValueError on a malformed entry."""
        networks: list[IPNetwork] = []
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            try:
                network = ipaddress.ip_network(entry)
            except ValueError as exc:
                raise ValueError(
                    f"BOOKWORM_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR network ({exc})"
                ) from None
            networks.append(_unmapped_network(network))
        return cls(tuple(networks))

    def trusts(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def client_ip(peer: str | None, forwarded_for: str | None, proxies: TrustedProxies) -> str:
    """Return the client's normalised address: the peer's, or the nearest untrusted X-Forwarded-For hop."""
    address = _peer_address(peer)
    if address is None:
        return UNKNOWN
    if forwarded_for and proxies.trusts(address):
        address = _nearest_untrusted(address, forwarded_for, proxies)
    return str(address)


def _nearest_untrusted(peer: IPAddress, forwarded_for: str, proxies: TrustedProxies) -> IPAddress:
    # Each trusted proxy appended the address it saw; what lies left of an untrusted hop is the
    # client's to forge. A hop that does not parse was not written by a trusted proxy, so the last
    # trusted hop before it is the client.
    nearest = peer
    for hop in reversed(forwarded_for.split(",")[-MAX_FORWARDED_HOPS:]):
        address = parse_address(hop)
        if address is None:
            return nearest
        if not proxies.trusts(address):
            return address
        nearest = address
    return nearest


def parse_address(text: str | None) -> IPAddress | None:
    """Parse one address as peers and proxies spell it (with a port, brackets, zone, IPv4-mapped)."""
    if not text:
        return None
    text = text.strip()
    if match := _IPV4_WITH_PORT.fullmatch(text) or _IPV6_WITH_PORT.fullmatch(text):
        text = match.group(1)
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


_peer_address = lru_cache(maxsize=ADDRESS_CACHE_SIZE)(parse_address)


@lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def ip_group(ip: str) -> str:
    """Return what an address is counted as: itself for IPv4, its /64 network for IPv6."""
    address = parse_address(ip)
    if address is None:
        return UNKNOWN
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_GROUP_PREFIX), strict=False))
    return str(address)


def client_key(principal: Principal, ip: str) -> str:
    """Return the bounded, Redis-key-safe identity a request is charged to."""
    subject = principal.subject
    if subject is None:
        return f"ip:{ip_group(ip)}"
    if _SAFE_SUBJECT.fullmatch(subject):
        return f"user:{subject}"
    # ':' never appears in a safe subject, so a hashed key cannot collide with a plain one.
    digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"user:sha256:{digest}"


def _unmapped_network(network: IPNetwork) -> IPNetwork:
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen == 128:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network(mapped)
    return network
