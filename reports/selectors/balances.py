"""Balances: the current totals per currency and template, and the ledger's movements per period
(docs/reports.md, "Balances")."""

import datetime as dt

from django.db.models import Count, F, Q, QuerySet, Sum

from wallets.models import Balance, BalanceTemplate, LedgerEntry, LedgerKind

from ..models import LedgerFlowDay
from .common import (
    ZERO,
    Granularity,
    Period,
    as_date,
    day_summary_until,
    finish_period_rows,
    start_of_day,
    summary_period,
    trunc,
)

SUMMARY = "ledger"

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
    and debit), reversals, opening balances and the net change. The closed days come from the
    daily summary (`LedgerFlowDay`), the days after it from the ledger."""
    scope = {"reseller_id": reseller_id, "currency": currency, "template_id": template_id}
    totals: dict[tuple, dict] = {}
    live_since = period.start
    until = day_summary_until(SUMMARY)
    if until is not None and until > period.date_from:
        cut = min(until, period.date_to + dt.timedelta(days=1))
        _add(totals, _summary_rows(period, cut, scope))
        live_since = start_of_day(cut)
    if live_since < period.end:
        rows = flow_rows(
            since=live_since,
            until=period.end,
            keys=("currency",),
            granularity=period.granularity,
            **scope,
        )
        _add(totals, rows)
    rows = [
        {"period": period_, "currency": currency_, **figures}
        for (period_, currency_), figures in totals.items()
    ]
    return finish_period_rows(rows)


# The ledger entry's fields a summary row is keyed by, as the ORM reaches them.
FLOW_KEYS = {
    "currency": "balance__template__currency",
    "template_id": "balance__template_id",
    "reseller_id": "balance__wallet__subscription__subscriber__reseller_id",
}
FIGURES = ("entries", "net", *FLOW_COLUMNS)


def flow_rows(
    *,
    since,
    until,
    keys: tuple[str, ...],
    granularity: str = Granularity.DAY,
    reseller_id: int | None = None,
    currency: str = "",
    template_id: int | None = None,
) -> QuerySet:
    """The ledger entries written in [since, until) (`since` None: from the beginning) per
    `period` (the start of its day, week or month in the site's time zone) and `keys` (any of
    FLOW_KEYS): `entries`, `net` and each FLOW_COLUMNS sum."""
    queryset = LedgerEntry.objects.filter(created_at__lt=until)
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    queryset = _balance_filters(
        queryset,
        prefix="balance__",
        reseller_id=reseller_id,
        currency=currency,
        template_id=template_id,
    )
    aggregates = {
        name: Sum("amount", filter=condition, default=ZERO)
        for name, condition in FLOW_COLUMNS.items()
    }
    return (
        queryset.order_by()
        .annotate(period=trunc("created_at", granularity), **{k: F(FLOW_KEYS[k]) for k in keys})
        .values("period", *keys)
        .annotate(entries=Count("id"), net=Sum("amount"), **aggregates)
    )


def _summary_rows(period: Period, cut: dt.date, scope: dict):
    days = LedgerFlowDay.objects.filter(day__gte=period.date_from, day__lt=cut)
    for name in ("reseller_id", "template_id"):
        if scope[name] is not None:
            days = days.filter(**{name: scope[name]})
    if scope["currency"]:
        days = days.filter(currency=scope["currency"])
    return (
        days.order_by()
        .annotate(period=summary_period(period.granularity))
        .values("period", "currency")
        .annotate(**{name: Sum(name) for name in FIGURES})
    )


def _add(totals: dict, rows) -> None:
    for row in rows:
        key = (as_date(row["period"]), row["currency"])
        total = totals.setdefault(key, dict.fromkeys(FIGURES, ZERO) | {"entries": 0})
        for name in FIGURES:
            total[name] += row[name]
