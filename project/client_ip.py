"""The address a request came from, for the login throttle (django-axes).

Without a proxy it is the peer's address (REMOTE_ADDR). Behind one reverse proxy, set
CLIENT_IP_HEADER to the header that proxy writes (docs/deploy.md): its last entry is the
address the proxy itself saw (X-Forwarded-For: the proxy appends it; X-Real-IP: the proxy
sets it). Never trust such a header without a proxy that writes it: clients could choose
their address and slip past the throttle.
"""

from __future__ import annotations

from django.conf import settings


def client_ip(request) -> str | None:
    header = settings.CLIENT_IP_HEADER
    if header:
        value = request.META.get("HTTP_" + header.upper().replace("-", "_"), "")
        last = value.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR") or None
