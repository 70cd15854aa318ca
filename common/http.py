"""What a request tells about its client."""

import ipaddress

from django.conf import settings


def client_ip(request) -> str | None:
    """The client's IP address: the one lockouts count and audit events record.

    Behind N reverse proxies (settings.TRUSTED_PROXY_COUNT), the client is the Nth address from
    the right of X-Forwarded-For: addresses further left are whatever the client chose to send.
    None when the address cannot be parsed.
    """
    candidate = request.META.get("REMOTE_ADDR", "")
    proxies = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0))
    if proxies > 0:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= proxies:
            candidate = forwarded[-proxies]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)
