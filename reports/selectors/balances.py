"""Balances: the current totals per currency and template, and the ledger's movements per period
(docs/reports.md, "Balances")."""

from django.db.models import Count, Q, QuerySet, Sum

from wallets.models import Balance, BalanceTemplate, LedgerEntry, LedgerKind

from .common import ZERO, Period, finish_period_rows, trunc

FLOW_COLUMNS = {
    "topups": Q(kind=LedgerKind.TOPUP),
    "redemptions": Q(kind=LedgerKind.REDEMPTION),
    "adjustments_credit": Q(kind=LedgerKind.ADJUSTMENT, amount__gt=0),
    "adjustments_debit": Q(kind=LedgerKind.ADJUSTMENT, amount__lt=0),
    "reversals": Q(kind=LedgerKind.REVERSAL),
    "openings": Q(kind=LedgerKind.OPENING),
}


def _balance_filters(
    queryset: QuerySet, *, prefix: str, reseller_id, currency: str, template_id
) -> QuerySet:
    if reseller_id is not None:
        queryset = queryset.filter(
            **{f"{prefix}wallet__subscription__subscriber__reseller_id": reseller_id}
        )
    if currency:
        queryset = queryset.filter(**{f"{prefix}template__currency": currency})
    if template_id is not None:
        queryset = queryset.filter(**{f"{prefix}template_id": template_id})
    return queryset


def balance_totals(
    *, reseller_id: int | None = None, currency: str = "", template_id: int | None = None
) -> list[dict]:
    """Current total of balances per currency (or unit) and balance template.

    A reseller-scoped view counts the wallets of that reseller's subscribers only (group wallets
    belong to no reseller).
    """
    queryset = _balance_filters(
        Balance.objects.all(),
        prefix="",
        reseller_id=reseller_id,
        currency=currency,
        template_id=template_id,
    )
    rows = list(
        queryset.order_by()
        .values("template__currency", "template_id")
        .annotate(count=Count("id"), value=Sum("amount"))
    )
    templates = dict(
        BalanceTemplate.objects.filter(pk__in={r["template_id"] for r in rows}).values_list(
            "pk", "name"
        )
    )
    for row in rows:
        row["currency"] = row.pop("template__currency")
        row["template"] = templates.get(row["template_id"], "")
    rows.sort(key=lambda r: (r["currency"], r["template"]))
    return rows


def balance_flows(
    *,
    period: Period,
    reseller_id: int | None = None,
    currency: str = "",
    template_id: int | None = None,
) -> list[dict]:
    """Ledger movements per period and currency: top-ups, card redemptions, adjustments (credit
    and debit), reversals, opening balances and the net change."""
    queryset = _balance_filters(
        LedgerEntry.objects.filter(created_at__gte=period.start, created_at__lt=period.end),
        prefix="balance__",
        reseller_id=reseller_id,
        currency=currency,
        template_id=template_id,
    )
    aggregates = {
        name: Sum("amount", filter=condition, default=ZERO)
        for name, condition in FLOW_COLUMNS.items()
    }
    rows = list(
        queryset.order_by()
        .annotate(period=trunc("created_at", period.granularity))
        .values("period", "balance__template__currency")
        .annotate(entries=Count("id"), net=Sum("amount"), **aggregates)
    )
    for row in rows:
        row["currency"] = row.pop("balance__template__currency")
    return finish_period_rows(rows)
