"""Admin form submissions claimed once (common/once.py), stored beside the REST API's
Idempotency-Keys: one row per user and key, under the same unique index."""

import hashlib
from collections.abc import Callable
from typing import TypeVar

from common.once import once

from ..models import IdempotencyKey

KEY_PREFIX = "admin-form:"
_FINGERPRINT = hashlib.sha256(b"admin form submission").hexdigest()
T = TypeVar("T")


def submission_claim(*, token: str, actor) -> None:
    IdempotencyKey.objects.create(user=actor, key=KEY_PREFIX + token, fingerprint=_FINGERPRINT)


def submitted_once(*, token: str, actor, apply: Callable[[], T]) -> T:
    """`apply()` unless this user's form with this token already took effect
    (common.once.AlreadySubmitted)."""
    return once(
        token=token, claim=lambda claimed: submission_claim(token=claimed, actor=actor), apply=apply
    )
