"""API access lists: normalizing entries and deciding whether a caller's address is on one."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_GROUP = r"[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join((
    rf"(?:{_GROUP}:){{7}}{_GROUP}",
    rf"(?:{_GROUP}:){{1,7}}:",
    rf"(?:{_GROUP}:){{1,6}}:{_GROUP}",
    *(rf"(?:{_GROUP}:){{1,{7 - tail}}}(?::{_GROUP}){{1,{tail}}}" for tail in range(2, 7)),
    rf":(?:(?::{_GROUP}){{1,7}}|:)",
))
IP_OR_CIDR = (rf"{_IPV4}(?:/(?:3[0-2]|[12]?[0-9]))?"
              rf"|(?:{_IPV6})(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?")
"""An address or a CIDR block, IPv4 or IPv6, in the forms an access list takes: what `/openapi.json` states
(anchored) and the server holds entries to, so that the document and the server refuse the same values.
Every value it matches is one `ipaddress` reads (host bits may be set: the block is normalized); forms
`ipaddress` reads beyond it — a zone id, a dotted netmask, an IPv4 tail in IPv6, surrounding spaces — are
refused, as the document says."""
IP_OR_CIDR_PATTERN = f"^(?:{IP_OR_CIDR})$"
_IP_OR_CIDR = re.compile(IP_OR_CIDR)


def is_ip_or_cidr(value: str) -> bool:
    """Whether a caller's entry is written as the document says (`IP_OR_CIDR`)."""
    return _IP_OR_CIDR.fullmatch(value) is not None


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
