"""Who is asking: the client address used for login throttling (django-axes).

Behind reverse proxies REMOTE_ADDR is the nearest proxy, so every user would share one address and
one attacker could lock a user out from everywhere. With TRUSTED_PROXY_COUNT = N proxies that
each append to X-Forwarded-For, the client is the N-th address from the right; addresses further
left were written by the client itself and are not trusted.
"""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The client's IP address as our trusted proxies saw it (REMOTE_ADDR without proxies)."""
    count = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0))
    remote = request.META.get("REMOTE_ADDR", "") or ""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if count <= 0 or not forwarded:
        return remote
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    return hops[-count] if len(hops) >= count else (hops[0] if hops else remote)
