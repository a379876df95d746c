"""Which destinations a postback may reach.

Checked when a configuration is saved (where placeholders may stand, literal addresses and
names that resolve now), the placeholder rule again when a request is rendered, and the
addresses by the outgoing-HTTP module at connect time, where DNS may answer differently.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from partners.macros import url_authority_problem

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def address_refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is not a public destination, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            reason = address_refusal(embedded)
            if reason:
                return f"{reason} (embedded in {address})"
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is a link-local address"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if address.is_unspecified:
        return f"{address} is an unspecified address"
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("100.64.0.0/10"):
        return f"{address} is a carrier-grade NAT address"
    if address.is_private:
        return f"{address} is a private address"
    if address.is_reserved or not address.is_global:
        return f"{address} is a reserved address"
    return None


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, legacy IPv4 forms included (2130706433, 0x7f.1, 0177.0.0.1)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if host and all(char in "0123456789abcdefxABCDEFX." for char in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def destination_problem(url: str, *, resolve: bool = True) -> str | None:
    """Why a destination URL (a template: it may hold {macro} placeholders) is refused, or None.
    Honours POSTBACK_ALLOW_PRIVATE_DESTINATIONS."""
    # First, and whatever else is allowed: a placeholder in the host is never looked up in DNS.
    authority_problem = url_authority_problem(url)
    if authority_problem:
        return authority_problem
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "The URL is malformed (check the host and port)."
    if parts.scheme not in ("http", "https"):
        return "The destination must start with https:// or http://."
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return "The destination has no host name."
    if parts.username or parts.password:
        return "Credentials in the URL are not allowed; use a network-specific field or a signing secret."
    if settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS:
        return None
    private_hint = " Postbacks only go to public addresses (POSTBACK_ALLOW_PRIVATE_DESTINATIONS is off)."
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return f"{host} is this machine.{private_hint}"
    literal = literal_address(host)
    if literal is not None:
        reason = address_refusal(literal)
        return f"{reason}.{private_hint}" if reason else None
    if resolve:
        for address in resolved_addresses(host, port or (443 if parts.scheme == "https" else 80)):
            reason = address_refusal(address)
            if reason:
                return f"{host} resolves to {reason}.{private_hint}"
    return None


def resolved_addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Addresses a host resolves to now; none when it does not resolve (checked again at send time)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
