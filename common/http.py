"""What a request tells about its client."""

import codecs
import functools
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
    return _address(candidate)


# ipaddress parses slowly (about 10 µs), a REST top-up reads its address two or three times, and
# a partner sends from few addresses: the last ones parsed are remembered.
@functools.lru_cache(maxsize=1024)
def _address(candidate: str) -> str | None:
    """`candidate` in the form events record (an IPv4-mapped IPv6 address as IPv4), or None."""
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


# Bytes a query string or form body may hold: a charset that cannot decode them (with errors
# replaced, as Django and urllib do) would crash whatever reads the request.
_CHARSET_PROBE = b"a=%41&b=\xff\xfe\x00\x80+"


def readable_charset(name: str) -> bool:
    """Whether a Content-Type's charset names a text encoding that decodes any bytes.

    "x-unknown" names no codec; "rot13" and "hex" are codecs but not text encodings; "idna",
    "punycode" and "undefined" fail on ordinary bytes whatever the error handler.
    """
    try:
        if not codecs.lookup(name)._is_text_encoding:
            return False
        _CHARSET_PROBE.decode(name, "replace")
    except (LookupError, TypeError, ValueError):  # UnicodeError is a ValueError
        return False
    return True
