"""`manage.py check --deploy` refuses PIN keys that are malformed, too short or repeated.

Without this, a bad key is found only when a card is generated or revealed (cards/pins.py
raises then), long after the deployment that brought it. The messages name a key by its place
in the list, never by its value: keys are secrets (README, "Rotating the PIN keys").
"""

import base64
import binascii
import re

from django.conf import settings
from django.core.checks import Error, Tags, register

# 32 random bytes written in base64url are 43 characters (`secrets.token_urlsafe(32)`;
# the README suggests 48 bytes, 64 characters). A digest key is used as given, so its length is
# the only measure of strength we can take; a key of few distinct characters ("aaaa…",
# "abababab…") is long without being random.
MIN_DIGEST_KEY_CHARS = 43
MIN_DISTINCT_CHARS = 10
# Of 32 random bytes, fewer than this many distinct values is practically impossible.
MIN_DISTINCT_BYTES = 16
_BASE64URL = re.compile(r"\A[A-Za-z0-9_-]+={0,2}\Z")
_KEY_ID = re.compile(r"\A[A-Za-z0-9_.-]{1,64}\Z")


def _digest_key_errors(keys) -> list[Error]:
    errors = []
    if not keys:
        errors.append(Error("PIN_DIGEST_KEYS is empty.", id="cards.E001"))
    for position, key in enumerate(keys, start=1):
        if len(key) < MIN_DIGEST_KEY_CHARS or len(set(key)) < MIN_DISTINCT_CHARS:
            errors.append(
                Error(
                    f"PIN_DIGEST_KEYS item {position} is too short or not random enough.",
                    hint=f"Use at least {MIN_DIGEST_KEY_CHARS} random characters: "
                    'python -c "import secrets;print(secrets.token_urlsafe(48))"',
                    id="cards.E002",
                )
            )
    if len(set(keys)) != len(keys):
        errors.append(Error("PIN_DIGEST_KEYS lists a key twice.", id="cards.E003"))
    return errors


def _decoded(encoded: str) -> bytes | None:
    if not _BASE64URL.match(encoded):
        return None
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None


def _encryption_key_errors(items) -> list[Error]:
    errors = []
    if not items:
        errors.append(Error("PIN_ENCRYPTION_KEYS is empty.", id="cards.E004"))
    seen = set()
    for position, item in enumerate(items, start=1):
        key_id, separator, encoded = item.partition(":")
        key = _decoded(encoded) if separator else None
        if not _KEY_ID.match(key_id) or key is None or len(key) != 32:
            errors.append(
                Error(
                    f"PIN_ENCRYPTION_KEYS item {position} is not 'key_id:base64url of 32 bytes'.",
                    hint="A key id of letters, digits, '.', '_' or '-', a colon, then "
                    "base64url(secrets.token_bytes(32)) (README, Rotating the PIN keys).",
                    id="cards.E005",
                )
            )
        elif len(set(key)) < MIN_DISTINCT_BYTES:
            errors.append(
                Error(
                    f"PIN_ENCRYPTION_KEYS item {position} is not 32 random bytes.",
                    id="cards.E006",
                )
            )
        if key_id in seen:
            errors.append(
                Error(
                    f"PIN_ENCRYPTION_KEYS item {position} repeats a key id: every encrypted "
                    "PIN names its key by id, so each id must name one key.",
                    id="cards.E007",
                )
            )
        seen.add(key_id)
    return errors


@register(Tags.security, deploy=True)
def check_pin_keys(app_configs=None, **kwargs) -> list[Error]:
    # The published development keys are refused by config/settings/production.py itself.
    return _digest_key_errors(list(getattr(settings, "PIN_DIGEST_KEYS", []))) + (
        _encryption_key_errors(list(getattr(settings, "PIN_ENCRYPTION_KEYS", [])))
    )
