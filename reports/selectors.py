"""The report figures: one aggregate query each (GROUP BY in the database, never a loop over cards).

Every selector takes `reseller_id`: the reseller a scoped staff user is limited to (or the one an
unscoped user filtered on). The admin passes the staff user's own reseller whatever the request
says, so a scoped user cannot widen a report by editing the URL.

Point-in-time rules (documented in reports/README.md):
- "as of day D" means the state at the close of D: just before `end_of_day(D)`, the first moment of
  D + 1 in the current time zone. A card is a liability then when it was created before that
  instant, not redeemed before it, not expired before it (a card whose expiry is exactly midnight
  still counted on D and expires, as breakage, on D + 1), and not blocked. Every event at the
  instant itself belongs to D + 1, so liability(D) = liability(D - 1) + cards created on D
  - redemptions on D - breakage on D (for cards that are never blocked).
- Blocking is a present-time flag; the only block whose time the card keeps is the one a reversal
  applies (`reversed_at`), so a card reversed after D counts as unblocked on D, and any other
  blocked card counts as blocked on every date.
- Deleted cards are gone from the cards table and count nowhere, on any date (Mass Edit deletes
  only never-activated cards; their serial survives in the audit log only).
- Expiry dates and resellers are read as they are now (Mass Edit may have changed them).
"""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, DateTimeField, F, Q, QuerySet, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from cards.models import TopUpCard
from subscribers.models import Reseller, StaffReseller
from wallets.models import Balance, BalanceTemplate, LedgerEntry, LedgerKind

ZERO = Decimal("0")
NO_RESELLER = "(no reseller)"
NO_CHANNEL = "(unknown)"


class Granularity:
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    CHOICES = [(DAY, "Day"), (WEEK, "Week"), (MONTH, "Month")]


def reseller_scope(user) -> int | None:
    """The reseller a staff user is limited to, or None for an operator who sees every reseller."""
    if user is None or not user.is_authenticated:
        return None
    return StaffReseller.objects.filter(user=user).values_list("reseller_id", flat=True).first()


def start_of_day(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


def end_of_day(day: dt.date) -> dt.datetime:
    """The instant a day closes: midnight at the start of the next day."""
    return start_of_day(day + dt.timedelta(days=1))


def period_start(day: dt.date, granularity: str) -> dt.date:
    if granularity == Granularity.WEEK:
        return day - dt.timedelta(days=day.weekday())
    if granularity == Granularity.MONTH:
        return day.replace(day=1)
    return day


def periods(date_from: dt.date, date_to: dt.date, granularity: str) -> list[dt.date]:
    """Every period that overlaps [date_from, date_to], so charts show empty periods too."""
    result = []
    current = period_start(date_from, granularity)
    while current <= date_to:
        result.append(current)
        if granularity == Granularity.DAY:
            current += dt.timedelta(days=1)
        elif granularity == Granularity.WEEK:
            current += dt.timedelta(days=7)
        else:
            current = (current + dt.timedelta(days=32)).replace(day=1)
    return result


def _trunc(field: str, granularity: str) -> Trunc:
    return Trunc(
        field, granularity, output_field=DateTimeField(), tzinfo=timezone.get_current_timezone()
    )


def _as_date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return value


def _reseller_names(ids: Iterable[int | None]) -> dict[int | None, str]:
    names: dict[int | None, str] = {None: NO_RESELLER}
    wanted = {i for i in ids if i is not None}
    if wanted:
        names.update(Reseller.objects.filter(pk__in=wanted).values_list("pk", "name"))
    return names


def _card_filters(
    queryset: QuerySet,
    *,
    reseller_id: int | None,
    currency: str = "",
    series: str = "",
) -> QuerySet:
    if reseller_id is not None:
        queryset = queryset.filter(reseller_id=reseller_id)
    if currency:
        queryset = queryset.filter(currency=currency)
    if series:
        queryset = queryset.filter(series=series)
    return queryset


def _reseller_order(row: dict) -> tuple[bool, str]:
    """Sort key: resellers by name, cards without a reseller last."""
    return (row["reseller_id"] is None, row["reseller"])


def _name_resellers(rows: list[dict]) -> list[dict]:
    if rows and "reseller_id" in rows[0]:
        names = _reseller_names(row["reseller_id"] for row in rows)
        for row in rows:
            row["reseller"] = names.get(row["reseller_id"], NO_RESELLER)
    return rows


# --- Liability ----------------------------------------------------------------------------------

LIABILITY_GROUPINGS = {
    "currency": ("currency",),
    "reseller": ("currency", "reseller_id"),
    "series": ("currency", "reseller_id", "series"),
}


def liability_cards(*, as_of: dt.datetime) -> QuerySet:
    """Cards that could still be redeemed just before the instant `as_of` (an end of day)."""
    return TopUpCard.objects.filter(
        Q(activated_at__isnull=True) | Q(activated_at__gte=as_of),
        Q(blocked=False) | Q(reversed_at__gte=as_of),
        created_at__lt=as_of,
        expires_at__gte=as_of,
    )


def liability(
    *,
    as_of: dt.datetime,
    group_by: str = "reseller",
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
) -> list[dict]:
    """Count and face value of redeemable cards at `as_of`, by currency (+ reseller, + series)."""
    keys = LIABILITY_GROUPINGS[group_by]
    queryset = _card_filters(
        liability_cards(as_of=as_of), reseller_id=reseller_id, currency=currency, series=series
    )
    rows = list(
        queryset.order_by()
        .values(*keys)
        .annotate(count=Count("id"), value=Sum("amount"))
        .order_by(*keys)
    )
    rows = _name_resellers(rows)
    if "reseller_id" in keys:
        rows.sort(key=lambda r: (r["currency"], _reseller_order(r), r.get("series", "")))
    return rows


# --- Redemptions --------------------------------------------------------------------------------

REDEMPTION_BREAKDOWNS = {
    "none": (),
    "channel": ("channel",),
    "reseller": ("reseller_id",),
    "series": ("series",),
    "reseller_series": ("reseller_id", "series"),
    "reseller_channel": ("reseller_id", "channel"),
}


@dataclass(frozen=True)
class Period:
    date_from: dt.date
    date_to: dt.date
    granularity: str

    @property
    def start(self) -> dt.datetime:
        return start_of_day(self.date_from)

    @property
    def end(self) -> dt.datetime:
        return end_of_day(self.date_to)


def _finish_period_rows(rows: list[dict], breakdown_keys: tuple[str, ...] = ()) -> list[dict]:
    for row in rows:
        row["period"] = _as_date(row["period"])
    rows = _name_resellers(rows)

    def order(row: dict) -> list[tuple[bool, str]]:
        return [
            _reseller_order(row) if key == "reseller_id" else (False, str(row[key]))
            for key in breakdown_keys
        ]

    rows.sort(key=lambda r: (r["period"], r["currency"], order(r)))
    return rows


def redemptions(
    *,
    period: Period,
    breakdown: str = "none",
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
    channel: str = "",
) -> list[dict]:
    """Cards redeemed in the period: count and value per period, currency and breakdown, and
    how much of that value was reversed since."""
    queryset = _card_filters(
        TopUpCard.objects.filter(activated_at__gte=period.start, activated_at__lt=period.end),
        reseller_id=reseller_id,
        currency=currency,
        series=series,
    )
    if channel:
        queryset = queryset.filter(ledger_entry__channel=channel)
    extra = REDEMPTION_BREAKDOWNS[breakdown]
    queryset = queryset.order_by().annotate(period=_trunc("activated_at", period.granularity))
    if "channel" in extra:
        queryset = queryset.annotate(channel=F("ledger_entry__channel"))
    rows = list(
        queryset.values("period", "currency", *extra).annotate(
            count=Count("id"),
            value=Sum("amount"),
            reversed_value=Sum("amount", filter=Q(reversed_at__isnull=False), default=ZERO),
        )
    )
    for row in rows:
        if "channel" in row:
            row["channel"] = row["channel"] or NO_CHANNEL
    return _finish_period_rows(rows, extra)


# --- Breakage -----------------------------------------------------------------------------------

BREAKAGE_BREAKDOWNS = {
    "none": (),
    "reseller": ("reseller_id",),
    "series": ("series",),
    "reseller_series": ("reseller_id", "series"),
}


def breakage(
    *,
    period: Period,
    now: dt.datetime | None = None,
    breakdown: str = "none",
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
) -> list[dict]:
    """Cards that expired unredeemed in the period (up to now), counted in the period they expired.

    Blocked cards that expired unredeemed are breakage too; `blocked_value` shows how much of it.
    """
    now = now or timezone.now()
    queryset = _card_filters(
        TopUpCard.objects.filter(
            activated_at__isnull=True,
            expires_at__gte=period.start,
            expires_at__lt=period.end,
            expires_at__lte=now,
        ),
        reseller_id=reseller_id,
        currency=currency,
        series=series,
    )
    extra = BREAKAGE_BREAKDOWNS[breakdown]
    rows = list(
        queryset.order_by()
        .annotate(period=_trunc("expires_at", period.granularity))
        .values("period", "currency", *extra)
        .annotate(
            count=Count("id"),
            value=Sum("amount"),
            blocked_value=Sum("amount", filter=Q(blocked=True), default=ZERO),
        )
    )
    return _finish_period_rows(rows, extra)


# --- Expiring soon ------------------------------------------------------------------------------

EXPIRY_WINDOWS = (7, 30, 90)


def expiring(
    *,
    now: dt.datetime | None = None,
    group_by: str = "reseller",
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
) -> list[dict]:
    """Redeemable cards expiring within 7, 30 and 90 days from now (each window includes the
    shorter ones): `count_7`, `value_7`, `count_30`, ..."""
    now = now or timezone.now()
    keys = LIABILITY_GROUPINGS[group_by]
    horizon = {days: now + dt.timedelta(days=days) for days in EXPIRY_WINDOWS}
    queryset = _card_filters(
        TopUpCard.objects.filter(
            activated_at__isnull=True,
            blocked=False,
            expires_at__gt=now,
            expires_at__lte=horizon[max(EXPIRY_WINDOWS)],
        ),
        reseller_id=reseller_id,
        currency=currency,
        series=series,
    )
    aggregates = {}
    for days in EXPIRY_WINDOWS:
        within = Q(expires_at__lte=horizon[days])
        aggregates[f"count_{days}"] = Count("id", filter=within)
        aggregates[f"value_{days}"] = Sum("amount", filter=within, default=ZERO)
    rows = list(queryset.order_by().values(*keys).annotate(**aggregates).order_by(*keys))
    rows = _name_resellers(rows)
    if "reseller_id" in keys:
        rows.sort(key=lambda r: (r["currency"], _reseller_order(r), r.get("series", "")))
    return rows


# --- Balances -----------------------------------------------------------------------------------


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


FLOW_COLUMNS = {
    "topups": Q(kind=LedgerKind.TOPUP),
    "redemptions": Q(kind=LedgerKind.REDEMPTION),
    "adjustments_credit": Q(kind=LedgerKind.ADJUSTMENT, amount__gt=0),
    "adjustments_debit": Q(kind=LedgerKind.ADJUSTMENT, amount__lt=0),
    "reversals": Q(kind=LedgerKind.REVERSAL),
    "openings": Q(kind=LedgerKind.OPENING),
}


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
        .annotate(period=_trunc("created_at", period.granularity))
        .values("period", "balance__template__currency")
        .annotate(entries=Count("id"), net=Sum("amount"), **aggregates)
    )
    for row in rows:
        row["currency"] = row.pop("balance__template__currency")
    return _finish_period_rows(rows)
