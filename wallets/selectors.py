from decimal import Decimal

from django.db.models import DecimalField, F, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from .models import Balance, BalanceInterval, LedgerEntry


def _ledger_total(field: str):
    """Sum of the ledger entries pointing at the outer row through `field`."""
    return Coalesce(
        Subquery(
            LedgerEntry.objects.filter(**{field: OuterRef("pk")})
            .order_by()
            .values(field)
            .annotate(total=Sum("amount"))
            .values("total")[:1]
        ),
        Value(Decimal("0")),
        output_field=DecimalField(max_digits=30, decimal_places=6),
    )


def balances_out_of_ledger() -> QuerySet[Balance]:
    """Balances whose amount differs from the sum of their ledger entries."""
    return (
        Balance.objects.annotate(ledger_total=_ledger_total("balance"))
        .exclude(amount=F("ledger_total"))
        .select_related("wallet__subscription", "wallet__group", "template")
        .order_by("pk")
    )


def intervals_out_of_ledger() -> QuerySet[BalanceInterval]:
    """Periodic intervals whose amount differs from the sum of their ledger entries."""
    return (
        BalanceInterval.objects.annotate(ledger_total=_ledger_total("interval"))
        .exclude(amount=F("ledger_total"))
        .select_related("balance__wallet")
        .order_by("pk")
    )


def subscriber_main_balance(subscriber) -> Balance | None:
    return (
        Balance.objects.select_related("template")
        .filter(wallet__subscription__subscriber=subscriber, is_main=True)
        .order_by("wallet_id")
        .first()
    )
