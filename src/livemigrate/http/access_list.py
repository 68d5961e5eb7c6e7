"""API access lists: normalizing entries and deciding whether a caller's address is on one."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def normalize_entry(value: str) -> tuple[str, str | None]:
    """Return (cidrBlock, ipAddress or None) for an IP or CIDR; raise ValueError when it is neither."""
    text = value.strip()
    if "/" in text:
        network = ipaddress.ip_network(text, strict=False)
        single = network.num_addresses == 1
        return str(network), str(network.network_address) if single else None
    address = ipaddress.ip_address(text)
    return str(ipaddress.ip_network(address)), str(address)


def is_allowed(caller_ip: str | None, cidr_blocks: Iterable[str]) -> bool:
    if caller_ip is None:
        return False
    try:
        address = ipaddress.ip_address(caller_ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(block) for block in cidr_blocks)
