"""Brute-force protection for redemption (docs/panel.md), counted from the audit events.

Failed redemptions are `CardEvent` rows of kind `redeem_failed`, so the count lives in the
database and holds across every app server process. Only guesses count: attempts whose code
matches no card (RedeemFailed.GUESSES). A used, blocked or expired card, a lost race for a card,
a currency or amount mismatch, and attempts refused by a lock are audited but not counted.

Each attempt has an own key and a shared key:

- Panel: own = the subscriber (strict); shared = the client address (an IPv4 address or an IPv6
  network), with a much higher limit sized for carrier NAT, and applied only to subscribers
  with a counted failure of their own: a guesser behind a shared address never locks out the
  neighbours who typed nothing wrong.
- REST: own = the API client and the end subscriber the path names (strict); shared = the API
  client as a whole, with a much higher limit: one end user's typos never stop the partner, a
  partner-wide burst does, and raises the failure budget's alert.

A subscriber's own successful redemption clears its own count. It never clears a shared count.

Settings (see config/settings/base.py): REDEEM_LOCKOUT_FAILURES, REDEEM_LOCKOUT_ADDRESS_FAILURES,
REDEEM_LOCKOUT_API_FAILURES, REDEEM_LOCKOUT_API_CLIENT_FAILURES, REDEEM_LOCKOUT_WINDOW,
REDEEM_LOCKOUT_DURATION, REDEEM_LOCKOUT_IPV6_PREFIX, REDEEM_FAILURE_BUDGET,
REDEEM_FAILURE_BUDGET_WINDOW, TRUSTED_PROXY_COUNT.
"""

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.db.models import Max, Q, Subquery
from django.utils import timezone
from django.utils.translation import gettext

from common.formats import format_datetime
from common.queries import top_values
from wallets.models import Channel

from .events import RedeemFailed
from .models import CardEvent, TopUpCard
from .models.events import CardEventKind

# Enough rows to find any lock: refused attempts are not counted and counting is serialised per
# key (attempt_lock_keys), so a key collects at most its limit of failures per window.
_MAX_ROWS = 500
_BUDGET_COUNT_CAP = 100_000
_BUDGET_SAMPLE = 10_000


def lockout_failures(channel: str = Channel.PANEL) -> int:
    """The strict limit of the attempt's own key: a subscriber, or an API client's end user."""
    panel = int(getattr(settings, "REDEEM_LOCKOUT_FAILURES", 5))
    if channel == Channel.REST:
        return int(getattr(settings, "REDEEM_LOCKOUT_API_FAILURES", None) or panel)
    return panel


def shared_lockout_failures(channel: str = Channel.PANEL) -> int:
    """The limit of the attempt's shared key: a client address, or an API client as a whole."""
    if channel == Channel.REST:
        return int(getattr(settings, "REDEEM_LOCKOUT_API_CLIENT_FAILURES", 250))
    return int(getattr(settings, "REDEEM_LOCKOUT_ADDRESS_FAILURES", 50))


def lockout_window() -> dt.timedelta:
    return getattr(settings, "REDEEM_LOCKOUT_WINDOW", dt.timedelta(minutes=15))


def lockout_duration() -> dt.timedelta:
    return getattr(settings, "REDEEM_LOCKOUT_DURATION", dt.timedelta(minutes=15))


def _counted_failures():
    guesses = Q((f"changes__{RedeemFailed.REASON}__in", RedeemFailed.GUESSES))
    return CardEvent.objects.filter(guesses, kind=CardEventKind.REDEEM_FAILED)


def _lock_end(times: list[dt.datetime], needed: int) -> dt.datetime | None:
    """When the latest lock these failure times (ascending) trigger ends, if any triggers."""
    window = lockout_window()
    end = None
    for index in range(needed - 1, len(times)):
        if times[index] - times[index - needed + 1] <= window:
            end = times[index] + lockout_duration()
    return end


def _failure_times(condition: Q, since: dt.datetime, needed: int) -> list[dt.datetime]:
    newest_first = list(
        _counted_failures()
        .filter(condition, created_at__gt=since)
        .order_by("-created_at")
        .values_list("created_at", flat=True)[: max(_MAX_ROWS, 2 * needed)]
    )
    return newest_first[::-1]


def _network(ip_address: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The addresses counted together with this one.

    An IPv4 address alone. An IPv6 address with its whole network (/64 by default): a home
    connection gets at least a /64 and could otherwise pick a fresh address for every guess.
    """
    address = ipaddress.ip_address(ip_address)
    if address.version == 4:
        return ipaddress.ip_network(address)
    prefix = int(getattr(settings, "REDEEM_LOCKOUT_IPV6_PREFIX", 64))
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


def address_range(ip_address: str) -> tuple[str, str]:
    """The first and last address counted together with this one (`_network`)."""
    network = _network(ip_address)
    return str(network.network_address), str(network.broadcast_address)


def _ip_condition(ip_address: str, since: dt.datetime) -> Q:
    network = _network(ip_address)
    if network.version == 4:
        return Q(ip_address=ip_address)
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


def advisory_key(name: str) -> int:
    """A signed 64-bit number for a lock name (pg_advisory_xact_lock takes a bigint)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, person=b"topup-lockout").digest()
    return int.from_bytes(digest, "big", signed=True)


# An API client's key is this base plus its user's id, so the REST top-up statement computes it
# in SQL from the caller it looks up itself (cards.sql.redemption.topup_statement). The base lies
# outside the 32-bit numbers hashtext() gives wallets.sql.advisory_lock; an address's 64-bit
# digest meets this range of 2^31 numbers with a chance of one in 2^33.
CLIENT_LOCK_BASE = 0x4150_4943_0000_0000  # "APIC", then 32 zero bits


def client_lock_key(actor) -> int:
    return CLIENT_LOCK_BASE + actor.pk


def attempt_lock_keys(*, actor, channel: str, ip_address: str | None) -> list[int]:
    """The shared keys whose count this attempt may complete, as advisory lock numbers.

    Held from the lock check to the recorded failure, so parallel attempts on one shared key
    cannot all pass the check before their failures are counted. The own key needs none: the
    subscriber's row lock already runs one attempt of a subscriber at a time.
    """
    if channel == Channel.REST:
        return [client_lock_key(actor)] if getattr(actor, "pk", None) is not None else []
    return [advisory_key(f"address:{_network(ip_address)}")] if ip_address else []


def redemption_locked_until(
    *, subscriber, actor, channel: str, ip_address: str | None, now: dt.datetime | None = None
) -> dt.datetime | None:
    """The end of the lock on this attempt's own or shared key, or None (module docstring)."""
    now = now or timezone.now()
    since = now - lockout_window() - lockout_duration()
    own = shared = None
    if channel == Channel.REST:
        if actor is not None and actor.pk is not None:
            rest = Q(actor=actor, channel=Channel.REST)
            shared = rest
            if subscriber is not None and subscriber.pk is not None:
                own = Q(rest, subscriber=subscriber)
    else:
        not_rest = ~Q(channel=Channel.REST)
        if subscriber is not None and subscriber.pk is not None:
            own = Q(not_rest, subscriber=subscriber)
        if ip_address:
            shared = Q(not_rest, _ip_condition(ip_address, since))
    ends = []
    own_times: list[dt.datetime] = []
    if own is not None:
        last_success = _last_success(subscriber, since)
        needed = lockout_failures(channel)
        own_times = _failure_times(own, max(since, last_success or since), needed)
        ends.append(_lock_end(own_times, needed))
    # An address's lock stops only those behind it who have guessed wrong themselves; an API
    # client's stops all its end users (only the partner itself can fail that often).
    if shared is not None and (channel == Channel.REST or own_times):
        needed = shared_lockout_failures(channel)
        ends.append(_lock_end(_failure_times(shared, since, needed), needed))
    latest = max((end for end in ends if end is not None), default=None)
    return latest if latest is not None and latest > now else None


def locked_message(locked_until: dt.datetime) -> str:
    """In the active language: the panel's subscriber's, English over REST (docs/panel.md)."""
    until = timezone.localtime(locked_until)
    return gettext(
        "Too many wrong voucher codes. Redemption is locked until %(until)s (%(zone)s). "
        "Please try again after that time."
    ) % {"until": format_datetime(until), "zone": until.tzname()}


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

    return FailureBudget(
        failures=failures,
        limit=limit,
        window=window,
        capped=failures >= _BUDGET_COUNT_CAP,
        sampled=failures > _BUDGET_SAMPLE,
        top_ips=top_values(latest, "ip_address", top=top),
        top_subscribers=top_values(
            latest.exclude(channel=Channel.REST), "subscriber__name", top=top
        ),
        top_api_clients=top_values(latest.filter(channel=Channel.REST), "actor__username", top=top),
    )
