"""The address a request came from: one rule for the login throttle (django-axes), an event's
default `ip`, a click's IP and the click rate limit.

Without a proxy it is the connection's address (REMOTE_ADDR). Behind TRUSTED_PROXIES reverse
proxies (load balancers) that each append the address they were reached from to
X-Forwarded-For, it is the address the farthest of them saw (docs/deploy.md). What a client
wrote into that header itself is never taken: otherwise it could choose a new address for
each guess and slip past every per-address limit.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def caller_ip(meta: dict) -> str | None:
    """The caller's address, from a request's META."""
    hops = settings.TRUSTED_PROXIES
    forwarded = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",")] if hops else []
    if forwarded and forwarded != [""]:
        address = forwarded[-hops] if len(forwarded) >= hops else forwarded[0]
        try:
            return str(ipaddress.ip_address(address))
        except ValueError:
            pass  # not an address: the proxies are not as configured
    return meta.get("REMOTE_ADDR") or None


def client_ip(request) -> str | None:
    """django-axes' AXES_CLIENT_IP_CALLABLE."""
    return caller_ip(request.META)
