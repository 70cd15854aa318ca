"""Brute-force protection for redemption (docs/panel.md), counted from the audit events.

Failed redemptions are `CardEvent` rows of kind `redeem_failed`, so the count lives in the
database and holds across every app server process. Panel attempts are counted per subscriber
and per client IP; REST attempts per API client (the authenticated user). Attempts refused
because of a lock are audited too (`RedeemFailed.LOCKED`) but do not count towards a lock, so a lock
ends on time instead of being extended by every refused attempt.

A subscriber's own successful redemption clears that subscriber's count. It never clears the
count of the client IP or of another subscriber on the same IP.

Settings (see config/settings/base.py): REDEEM_LOCKOUT_FAILURES, REDEEM_LOCKOUT_API_FAILURES,
REDEEM_LOCKOUT_WINDOW, REDEEM_LOCKOUT_DURATION, REDEEM_LOCKOUT_IPV6_PREFIX,
REDEEM_FAILURE_BUDGET, REDEEM_FAILURE_BUDGET_WINDOW, TRUSTED_PROXY_COUNT.
"""

import datetime as dt
import ipaddress
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Q, Subquery
from django.utils import timezone

from wallets.models import Channel

from .events import RedeemFailed
from .models import CardEvent, CardEventKind, TopUpCard

# Enough rows to find any lock: refused attempts are not counted, so a key collects at most a
# few failures per window; the cap only bounds the work when parallel requests overshoot.
_MAX_ROWS = 500
_BUDGET_COUNT_CAP = 100_000
_BUDGET_SAMPLE = 10_000


def lockout_failures(channel: str = Channel.PANEL) -> int:
    panel = int(getattr(settings, "REDEEM_LOCKOUT_FAILURES", 5))
    if channel == Channel.REST:
        return int(getattr(settings, "REDEEM_LOCKOUT_API_FAILURES", None) or panel)
    return panel


def lockout_window() -> dt.timedelta:
    return getattr(settings, "REDEEM_LOCKOUT_WINDOW", dt.timedelta(minutes=15))


def lockout_duration() -> dt.timedelta:
    return getattr(settings, "REDEEM_LOCKOUT_DURATION", dt.timedelta(minutes=15))


def _counted_failures():
    refused_by_lock = Q((f"changes__{RedeemFailed.REASON}", RedeemFailed.LOCKED))
    return CardEvent.objects.filter(kind=CardEventKind.REDEEM_FAILED).exclude(refused_by_lock)


def _lock_end(times: list[dt.datetime], needed: int) -> dt.datetime | None:
    """When the latest lock these failure times (ascending) trigger ends, if any triggers."""
    window = lockout_window()
    end = None
    for index in range(needed - 1, len(times)):
        if times[index] - times[index - needed + 1] <= window:
            end = times[index] + lockout_duration()
    return end


def _failure_times(condition: Q, since: dt.datetime) -> list[dt.datetime]:
    newest_first = list(
        _counted_failures()
        .filter(condition, created_at__gt=since)
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:_MAX_ROWS]
    )
    return newest_first[::-1]


def _ip_condition(ip_address: str, since: dt.datetime) -> Q:
    """The client addresses counted together with this one.

    An IPv4 address alone. An IPv6 address with its whole network (/64 by default): a home
    connection gets at least a /64 and could otherwise pick a fresh address for every guess.
    """
    address = ipaddress.ip_address(ip_address)
    if address.version == 4:
        return Q(ip_address=ip_address)
    prefix = int(getattr(settings, "REDEEM_LOCKOUT_IPV6_PREFIX", 64))
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    if connection.vendor == "postgresql":
        # inet compares by address: a range the partial index on ip_address serves.
        return Q(
            ip_address__gte=str(network.network_address),
            ip_address__lte=str(network.broadcast_address),
        )
    # SQLite keeps addresses as text, which does not order like addresses: find the recent
    # IPv6 senders and keep those of the network.
    senders = (
        _counted_failures()
        .filter(created_at__gt=since, ip_address__contains=":")
        .order_by()
        .values_list("ip_address", flat=True)
        .distinct()
    )
    return Q(ip_address__in=[ip for ip in senders if ipaddress.ip_address(ip) in network])


def _last_success(subscriber, since: dt.datetime) -> dt.datetime | None:
    return (
        TopUpCard.objects.filter(activated_by=subscriber, activated_at__gt=since)
        .order_by()
        .aggregate(last=Max("activated_at"))["last"]
    )


def redemption_locked_until(
    *, subscriber, actor, channel: str, ip_address: str | None, now: dt.datetime | None = None
) -> dt.datetime | None:
    """The end of the lock on this attempt's subscriber, client IP or API client, or None."""
    now = now or timezone.now()
    since = now - lockout_window() - lockout_duration()
    keys: list[tuple[Q, dt.datetime]] = []
    if channel == Channel.REST:
        if actor is not None and actor.pk is not None:
            keys.append((Q(actor=actor, channel=Channel.REST), since))
    else:
        not_rest = ~Q(channel=Channel.REST)
        if subscriber is not None and subscriber.pk is not None:
            last_success = _last_success(subscriber, since)
            keys.append((Q(not_rest, subscriber=subscriber), max(since, last_success or since)))
        if ip_address:
            keys.append((Q(not_rest, _ip_condition(ip_address, since)), since))
    needed = lockout_failures(channel)
    ends = [
        end
        for condition, start in keys
        if (end := _lock_end(_failure_times(condition, start), needed)) is not None
    ]
    latest = max(ends, default=None)
    return latest if latest is not None and latest > now else None


def locked_message(locked_until: dt.datetime) -> str:
    until = timezone.localtime(locked_until)
    return (
        "Too many wrong voucher codes. Redemption is locked until "
        f"{until:%Y-%m-%d %H:%M} ({until.tzname()}). Please try again after that time."
    )


# --- global failure budget ----------------------------------------------------------------


@dataclass(frozen=True)
class FailureBudget:
    failures: int
    limit: int
    window: dt.timedelta
    capped: bool = False
    """`failures` stopped counting at the cap: there were at least that many."""
    sampled: bool = False
    """The top sources are those of the latest _BUDGET_SAMPLE failures."""
    top_ips: list[tuple[str, int]] = field(default_factory=list)
    top_subscribers: list[tuple[str, int]] = field(default_factory=list)
    top_api_clients: list[tuple[str, int]] = field(default_factory=list)

    @property
    def exceeded(self) -> bool:
        return self.failures > self.limit

    @property
    def sample_size(self) -> int:
        return _BUDGET_SAMPLE

    @property
    def window_minutes(self) -> int:
        return int(self.window.total_seconds() // 60)


def failure_budget_status(*, now: dt.datetime | None = None, top: int = 5) -> FailureBudget:
    """Failed redemptions across everyone in the budget window; sources only when over budget."""
    now = now or timezone.now()
    limit = int(getattr(settings, "REDEEM_FAILURE_BUDGET", 100))
    window = getattr(settings, "REDEEM_FAILURE_BUDGET_WINDOW", dt.timedelta(minutes=10))
    # PIN checks outside redemption count too (docs/reliability.md, "No PIN oracle").
    counted = (CardEventKind.REDEEM_FAILED, CardEventKind.PINS_CHECKED)
    recent = CardEvent.objects.filter(kind__in=counted, created_at__gt=now - window).order_by()
    # Bounded work on every admin page even under a flood of guesses: count up to a cap, and
    # rank the sources among the latest failures only.
    failures = recent[: max(limit + 1, _BUDGET_COUNT_CAP)].count()
    if failures <= limit:
        return FailureBudget(failures=failures, limit=limit, window=window)
    latest = CardEvent.objects.filter(
        pk__in=Subquery(recent.order_by("-created_at").values("pk")[:_BUDGET_SAMPLE])
    ).order_by()

    def ranked(field_name: str, extra: Q) -> list[tuple[str, int]]:
        return [
            (str(row[field_name]), row["n"])
            for row in latest.filter(extra, **{f"{field_name}__isnull": False})
            .values(field_name)
            .annotate(n=Count("id"))
            .order_by("-n", field_name)[:top]
        ]

    return FailureBudget(
        failures=failures,
        limit=limit,
        window=window,
        capped=failures >= _BUDGET_COUNT_CAP,
        sampled=failures > _BUDGET_SAMPLE,
        top_ips=ranked("ip_address", Q()),
        top_subscribers=ranked("subscriber__name", ~Q(channel=Channel.REST)),
        top_api_clients=ranked("actor__username", Q(channel=Channel.REST)),
    )
