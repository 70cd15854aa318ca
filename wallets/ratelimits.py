"""Request counts shared by every app server process: REST throttling per API client and the stop
on repeated wrong credentials per client address (wallets.RateCounter).

One statement per counted request (an UPSERT that decides and counts at once), on PostgreSQL and
SQLite alike. The window slides: the count of the current fixed slot plus the previous slot's
count weighted by the part of it the window still covers (the estimate of the sliding log a DRF
throttle keeps, without a list of timestamps to read and write on every request).
"""

import time
from dataclasses import dataclass

from .models import RateCounter
from .sql import hot_cursor

_NO_LIMIT = 2**62
# r: the row as it was. previous/current: its counts seen from this request's slot. The
# %(n)s requests (1, or a REST client's lease: rsgateway.access.ClientRateThrottle) are allowed
# when previous * weight + current + n <= limit; only then are they counted.
COUNT_SQL = """
ON CONFLICT (key) DO UPDATE SET
    previous = CASE WHEN r.slot = excluded.slot THEN r.previous
                    WHEN r.slot = excluded.slot - 1 THEN r.current ELSE 0 END,
    current = CASE WHEN r.slot = excluded.slot THEN r.current ELSE 0 END + CASE WHEN
        (CASE WHEN r.slot = excluded.slot THEN r.previous
              WHEN r.slot = excluded.slot - 1 THEN r.current ELSE 0 END) * %(weight)s
        + (CASE WHEN r.slot = excluded.slot THEN r.current ELSE 0 END) + %(n)s <= %(limit)s
        THEN %(n)s ELSE 0 END,
    allowed = (CASE WHEN r.slot = excluded.slot THEN r.previous
                    WHEN r.slot = excluded.slot - 1 THEN r.current ELSE 0 END) * %(weight)s
        + (CASE WHEN r.slot = excluded.slot THEN r.current ELSE 0 END) + %(n)s <= %(limit)s,
    slot = excluded.slot
RETURNING previous, current, allowed
"""
"""The deciding part of the UPSERT, after `INSERT INTO wallets_ratecounter AS r (key, slot,
previous, current, allowed)` and the new row (slot, 0, first, first_allowed): so a statement
of its own (HIT_SQL) or the REST credentials query (rsgateway.credentials) can count."""
HIT_SQL = (
    """
INSERT INTO wallets_ratecounter AS r (key, slot, previous, current, allowed)
VALUES (%(key)s, %(slot)s, 0, %(first)s, %(first_allowed)s)"""
    + COUNT_SQL
)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    wait: float | None = None
    """Seconds until a request would be allowed again (when refused)."""


def _slot(period: float, now: float) -> tuple[int, float]:
    """The fixed slot `now` falls in, and the share of the previous slot the window covers."""
    slot = int(now // period)
    return slot, 1.0 - (now - slot * period) / period


def _wait(previous: int, current: int, limit: int, period: float, now: float) -> float:
    """Seconds until previous * weight + current + 1 <= limit, the weight falling with time."""
    slot, weight = _slot(period, now)
    into = now - slot * period
    if current + 1 <= limit:  # the previous slot's share has to shrink, within this slot
        needed = (limit - current - 1) / previous if previous else 1.0
        return max(0.0, (1.0 - needed) * period - into)
    # Only the next slot helps: then this slot's count is the previous one.
    needed = (limit - 1) / current if current else 1.0
    return (period - into) + (1.0 - needed) * period


def hit_params(*, limit: int, period: float, now: float, n: int = 1) -> dict:
    """COUNT_SQL's parameters but the key, for `n` requests at once."""
    slot, weight = _slot(period, now)
    return {
        "slot": slot,
        "weight": weight,
        "limit": limit,
        "n": n,
        "first": n if limit >= n else 0,
        "first_allowed": limit >= n,
    }


def hit_decision(
    previous: int, current: int, allowed: bool, *, limit: int, period: float, now: float
) -> RateDecision:
    """What COUNT_SQL's row says about the request it counted (or refused)."""
    if allowed:
        return RateDecision(allowed=True)
    return RateDecision(allowed=False, wait=_wait(previous, current, limit, period, now))


def rate_limit_hit(
    *, key: str, limit: int, period: float, now: float | None = None
) -> RateDecision:
    """Count one request under `key` if fewer than `limit` fall in the sliding `period` (s)."""
    now = time.time() if now is None else now
    params = {"key": key, **hit_params(limit=limit, period=period, now=now)}
    with hot_cursor() as cursor:
        cursor.execute(HIT_SQL, params)
        previous, current, allowed = cursor.fetchone()
    return hit_decision(previous, current, allowed, limit=limit, period=period, now=now)


def sliding_count(
    slot: int, previous: int, current: int, *, period: float, now: float | None = None
) -> float:
    """The sliding-window count of a RateCounter row read at `now`."""
    now = time.time() if now is None else now
    this_slot, weight = _slot(period, now)
    if slot == this_slot:
        return previous * weight + current
    if slot == this_slot - 1:
        return current * weight
    return 0.0


def rate_count(*, key: str, period: float, now: float | None = None) -> float:
    """The sliding-window count under `key`, without counting anything."""
    row = RateCounter.objects.filter(key=key).values_list("slot", "previous", "current").first()
    return 0.0 if row is None else sliding_count(*row, period=period, now=now)


def rate_count_add(*, key: str, period: float, now: float | None = None) -> None:
    """Count one event under `key` unconditionally (a wrong credential)."""
    rate_limit_hit(key=key, limit=_NO_LIMIT, period=period, now=now)
