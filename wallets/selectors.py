import logging
from decimal import Decimal

from django.db import connection
from django.db.models import (
    BigIntegerField,
    DecimalField,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Round
from django.utils import timezone

from .exceptions import BadData, NotFound, UnknownSearchTerm
from .models import AMOUNT_PLACES, Balance, BalanceInterval, BalanceKind, LedgerEntry, Wallet
from .services.intervals import balance_intervals_ensure

logger = logging.getLogger(__name__)

_TOTAL = DecimalField(max_digits=30, decimal_places=AMOUNT_PLACES)
_UNITS = BigIntegerField()


def _ledger_total(field: str, amount=None, output_field=_TOTAL):
    """Sum of the ledger entries pointing at the outer row through `field` (of `amount`, an
    expression over an entry's amount; the amount itself by default)."""
    return Coalesce(
        Subquery(
            LedgerEntry.objects.filter(**{field: OuterRef("pk")})
            .order_by()
            .values(field)
            .annotate(total=Sum(amount or F("amount"), output_field=output_field))
            .values("total")[:1]
        ),
        Value(0 if output_field is _UNITS else Decimal("0")),
        output_field=output_field,
    )


def _units(expression):
    """An amount in whole millionths (AMOUNT_PLACES), rounded: an exact integer on SQLite."""
    return Round(expression * Value(10**AMOUNT_PLACES), output_field=_UNITS)


def _out_of_ledger(queryset: QuerySet, field: str) -> QuerySet:
    """The rows of `queryset` whose amount differs from the sum of their entries (`field`)."""
    queryset = queryset.annotate(ledger_total=_ledger_total(field))
    if connection.vendor != "sqlite":
        return queryset.exclude(amount=F("ledger_total"))
    # SQLite keeps decimals as binary floating point and sums them so: a balance of 1004.91
    # has entries summing to 1004.9100000000001, and an exact comparison reports a balance
    # that agrees with its ledger. Compare whole millionths, each entry rounded on its own.
    return queryset.annotate(
        amount_units=_units(F("amount")),
        ledger_units=_ledger_total(field, _units(F("amount")), _UNITS),
    ).exclude(amount_units=F("ledger_units"))


def balances_out_of_ledger() -> QuerySet[Balance]:
    """Balances whose amount differs from the sum of their ledger entries."""
    return (
        _out_of_ledger(Balance.objects.all(), "balance")
        .select_related("wallet__subscription", "wallet__group", "template")
        .order_by("pk")
    )


def intervals_out_of_ledger() -> QuerySet[BalanceInterval]:
    """Periodic intervals whose amount differs from the sum of their ledger entries."""
    return (
        _out_of_ledger(BalanceInterval.objects.all(), "interval")
        .select_related("balance__wallet")
        .order_by("pk")
    )


def live_periodic_without_interval(balances: QuerySet[Balance], now) -> QuerySet[Balance]:
    """The live periodic balances among `balances` that have no interval for `now`."""
    return balances.filter(
        Q(end_time__isnull=True) | Q(end_time__gt=now),
        template__kind=BalanceKind.PERIODIC,
        start_time__lte=now,
    ).exclude(
        Exists(BalanceInterval.objects.live(now).filter(balance=OuterRef("pk"))),
    )


def ensure_current_intervals(balances: QuerySet[Balance], now=None) -> None:
    """Reading a periodic balance never finds it without its current interval: the ones missing
    are made from the template's period (docs/balance-rules.md, "Periodic intervals"). One query
    when nothing is missing, which is the rule while the worker runs."""
    now = now or timezone.now()
    _ensure(live_periodic_without_interval(balances, now).values_list("pk", flat=True))


def _ensure(balance_ids) -> None:
    for balance_id in balance_ids:
        try:
            balance_intervals_ensure(balance_id=balance_id)
        except BadData:  # a template without a valid period: shown without a current interval
            logger.warning(
                "Balance %s: no intervals made: its template has no valid period", balance_id
            )


def _subscriber_balances(subscriber) -> QuerySet[Balance]:
    return (
        Balance.objects.filter(wallet__subscription__subscriber=subscriber)
        .select_related("template")
        .order_by("-is_main", "wallet_id", "resource_id")
    )


def subscriber_balances(subscriber) -> QuerySet[Balance]:
    """The balances of the subscriber's own wallets, main balance first; a periodic one always
    with its current interval."""
    balances = _subscriber_balances(subscriber)
    ensure_current_intervals(balances)
    return balances


def subscriber_main_balance(subscriber) -> Balance | None:
    return _subscriber_balances(subscriber).filter(is_main=True).first()


def subscriber_recent_entries(subscriber, *, limit: int) -> QuerySet[LedgerEntry]:
    """The latest ledger entries of the subscriber's own balances, newest first."""
    return (
        LedgerEntry.objects.filter(balance__wallet__subscription__subscriber=subscriber)
        .select_related("balance__template")
        .order_by("-created_at", "-id")[:limit]
    )


# --- REST paths: {subscription|subscriber}/{ref}/wallet/{resourceId} ---------------------------

SEARCH_TERMS = {
    "subscription": {
        "ExternalId": "wallet__subscription__external_id",
        "AccessNumber": "wallet__subscription__access_numbers__number",
    },
    "subscriber": {
        "AccessNumber": "wallet__subscription__subscriber__subscriptions__access_numbers__number",
    },
}
OBJECT_ID = {
    "subscription": "wallet__subscription_id",
    "subscriber": "wallet__subscription__subscriber_id",
}
MAX_OBJECT_ID = 2**63 - 1
MAX_RESOURCE_ID = 2**31 - 1


def owner_filter(owner: str, ref: str) -> dict:
    """`{ref}` → a Balance filter: bare ObjectId, `ExternalId+value` or `AccessNumber+value`."""
    if "+" in ref:
        term, value = ref.split("+", 1)
        lookup = SEARCH_TERMS[owner].get(term)
        if lookup is None:
            raise UnknownSearchTerm(
                f"Unknown search term {term[:40]!r}: use an ObjectId, "
                + " or ".join(f"{name}+value" for name in SEARCH_TERMS[owner])
                + "."
            )
        if "\x00" in value:
            # No external id or access number holds a NUL (PostgreSQL cannot even compare one).
            raise NotFound(f"No {owner} matches this reference.")
        return {lookup: value}
    # Length first: int() refuses a string of more than 4,300 digits (ValueError, a 500).
    if not ref.isascii() or not ref.isdigit() or len(ref) > 19 or int(ref) > MAX_OBJECT_ID:
        raise NotFound(f"No {owner} has this ObjectId.")
    return {OBJECT_ID[owner]: int(ref)}


def _no_such_balance(owner: str, resource_id: int) -> NotFound:
    return NotFound(f"The {owner}'s wallet has no balance with resource id {resource_id}.")


def _not_found(owner: str, where: dict, resource_id: int | None) -> NotFound:
    wallet_where = {key.removeprefix("wallet__"): value for key, value in where.items()}
    if resource_id is not None and Wallet.objects.filter(**wallet_where).exists():
        return _no_such_balance(owner, resource_id)
    return NotFound(f"No {owner} matches this reference.")


def balance_by_ref(*, owner: str, ref: str, resource_id: int) -> Balance:
    """The balance `resourceId` of a subscription's (or subscriber's single) wallet."""
    where = owner_filter(owner, ref)
    if resource_id > MAX_RESOURCE_ID:
        raise _no_such_balance(owner, resource_id)
    queryset = Balance.objects.select_related(
        "template", "wallet__subscription__subscriber"
    ).filter(resource_id=resource_id, **where)
    if owner == "subscriber":
        queryset = queryset.distinct()  # the join through subscriptions can repeat a row
    found = list(queryset[:2])
    if not found:
        raise _not_found(owner, where, resource_id)
    if len(found) > 1:
        raise BadData(
            "The subscriber has several subscriptions with this balance: "
            "address the subscription instead."
        )
    return found[0]


def _live_intervals(balances: list[Balance], now) -> dict[int, BalanceInterval]:
    if not balances:
        return {}
    return {
        interval.balance_id: interval
        for interval in BalanceInterval.objects.live(now).filter(balance__in=balances)
    }


def wallet_balances(*, owner: str, ref: str, resource_id: int | None = None) -> list[Balance]:
    """A wallet's balances with their live interval as `.current`, for GET …/wallet."""
    where = owner_filter(owner, ref)
    queryset = Balance.objects.select_related("template").filter(**where).distinct()
    if resource_id is not None:
        if resource_id > MAX_RESOURCE_ID:
            raise _no_such_balance(owner, resource_id)
        queryset = queryset.filter(resource_id=resource_id)
    balances = list(queryset.order_by("wallet_id", "resource_id"))
    if not balances:
        raise _not_found(owner, where, resource_id)
    if len({balance.wallet_id for balance in balances}) > 1:
        raise BadData("The subscriber has several subscriptions: address the subscription instead.")
    now = timezone.now()
    periodic = [b for b in balances if b.template.kind == BalanceKind.PERIODIC]
    current = _live_intervals(periodic, now)
    missing = [b.pk for b in periodic if b.pk not in current and b.is_live(now)]
    if missing:
        _ensure(missing)
        current = _live_intervals(periodic, now)
    for balance in balances:
        balance.current = current.get(balance.pk)
    return balances
