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
  - redemptions on D - breakage on D (for cards that are never blocked), - deletions on D of
  cards still owed.
- Liability reads a card's block, expiry and reseller as they were at the instant: its current
  value, unless Mass Edit changed that field at or after the instant; then the `old` value of the
  card's earliest change of that field at or after it (an edited event for expires_at / reseller,
  blocked / unblocked for the flag: the kind says what the flag was before). So blocking a box of
  cards today, or moving them to another reseller, leaves last month's figure as reported. The
  reversal's block keeps its own date (`reversed_at`): a card reversed after D counts as not
  blocked on D. The cards without such a change are one aggregate with an anti-join on the
  changes since the instant; those with one are a second aggregate (`changed_liability`, one SQL
  statement: the earliest change per card and field by a window over the changes since the
  instant, then the cards by primary key), filtered (reseller, including a scoped user's,
  currency, series) on their state at the instant and merged by group key. Breakage, Expiring
  soon and Redemptions still read block, expiry and reseller as they are now.
- Deleted cards (Mass Edit's Delete all; only never-activated cards can go) count on the days
  before their deletion from their `deleted` audit event, which records the card as it was when
  deleted (amount, currency, reseller, series, created_at, expires_at, blocked). Liability as of D
  adds those deleted at or after `end_of_day(D)` (a deletion at midnight exactly belongs to D + 1,
  like every other event) that were created before it, had not expired before it and were not
  blocked when deleted; breakage adds those whose expiry falls in the period, has passed, and came
  before their deletion (a card deleted at or before its expiry instant is a deletion, not
  breakage), with `blocked_value` from the recorded flag. Both are one aggregate over the deletion
  events (the (kind, created_at) index reads only the deletions since the date or the period's
  start), merged with the cards' rows by group key. Expiring soon and Redemptions need nothing:
  a deleted card is neither redeemable now nor ever redeemed.
- Deletion events written before created_at, series and blocked were recorded take created_at and
  series from the event's batch (series, failing that, from the serial, whose prefix it is); an
  imported card has no batch, so its creation time is unknown and it counts as created before any
  date (on every day before its deletion while unexpired); a missing blocked flag reads as not
  blocked. The recorded reseller, expiry and flag are those at deletion time: Mass Edit's changes
  to a card before its deletion are not replayed (its events lose the card link), so a deleted
  card that was blocked after D and deleted later still reads as blocked on D.
"""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import (
    BigIntegerField,
    BooleanField,
    Case,
    CharField,
    Count,
    DateTimeField,
    DecimalField,
    Exists,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, StrIndex, Substr, Trunc
from django.utils import timezone

from cards.models import CardEvent, CardEventKind, TopUpCard
from subscribers.models import Reseller
from wallets.models import Balance, BalanceTemplate, LedgerEntry, LedgerKind

ZERO = Decimal("0")
NO_RESELLER = "(no reseller)"
NO_CHANNEL = "(unknown)"


class Granularity:
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    CHOICES = [(DAY, "Day"), (WEEK, "Week"), (MONTH, "Month")]


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
            # A deleted card may name a reseller deleted since: its id, not "(no reseller)".
            row["reseller"] = names.get(
                row["reseller_id"], f"(deleted reseller {row['reseller_id']})"
            )
    return rows


def _merge(rows: list[dict], more: list[dict], keys: tuple[str, ...], sums: tuple[str, ...]):
    """Add the rows of a second aggregate (the deleted cards) into the first, key by key: a loop
    over groups, not over cards."""
    for row in rows + more:
        if "period" in row:
            row["period"] = _as_date(row["period"])
    merged = {tuple(row[k] for k in keys): row for row in rows}
    for row in more:
        key = tuple(row[k] for k in keys)
        if key in merged:
            for name in sums:
                merged[key][name] += row[name]
        else:
            merged[key] = row
    return list(merged.values())


# --- Deleted cards ------------------------------------------------------------------------------


_SQLITE_INSTANT = "%Y-%m-%d %H:%M:%f"  # UTC text to the millisecond


class _Instant(Func):
    """A datetime that may come from JSON text, comparable the same way on both databases.

    Deletion events keep the card's datetimes in `changes` as the database wrote them: jsonb's
    ISO form on PostgreSQL ("2026-03-01T00:00:00+00:00"), the column's UTC text on SQLite
    ("2026-03-01 00:00:00[.ffffff]"). PostgreSQL casts either to timestamptz (text without an
    offset is read in the connection's time zone, UTC). SQLite compares datetimes as text, so
    both sides of a comparison go through strftime('%Y-%m-%d %H:%M:%f'), which reads either form
    (a "T" or a space, an offset or none) and writes one: UTC, to the millisecond.
    """

    output_field = DateTimeField()
    template = "(%(expressions)s)::timestamptz"

    def as_sqlite(self, compiler, connection, **extra_context):
        sql, params = super().as_sql(
            compiler, connection, template="strftime(%%s, %(expressions)s)", **extra_context
        )
        return sql, (_SQLITE_INSTANT, *params)


def _instant(value: dt.datetime) -> _Instant:
    return _Instant(Value(value, output_field=DateTimeField()))


def _from_changes(key: str) -> KeyTextTransform:
    return KeyTextTransform(key, "changes")


def deleted_cards() -> QuerySet:
    """One row per card deleted by Mass Edit (its `deleted` audit event), annotated with the card
    as it was when it went: `amount`, `currency`, `reseller_id`, `series`, `card_created_at`,
    `expires_at` and `blocked`; the event's own `created_at` is the time of the deletion.

    Events written before created_at, series and blocked were recorded fall back to the event's
    batch for created_at and series (series also to the serial's prefix, which is the series);
    with neither (an imported card, which has no batch) the creation time is unknown (NULL: the
    reports count such a card as created before any date), and a missing `blocked` reads as not
    blocked. Amount, currency, reseller and expiry have been in every deletion event since Delete
    all exists.
    """
    serial_series = Substr("serial", 1, StrIndex("serial", Value("-")) - 1)
    events = CardEvent.objects.filter(kind=CardEventKind.DELETED)
    return events.alias(blocked_text=Cast(_from_changes("blocked"), CharField())).annotate(
        amount=Cast(_from_changes("amount"), DecimalField(max_digits=14, decimal_places=2)),
        currency=Cast(_from_changes("currency"), CharField()),
        reseller_id=Cast(_from_changes("reseller"), BigIntegerField()),
        series=Coalesce(
            Cast(_from_changes("series"), CharField()),
            F("batch__series"),
            serial_series,
            output_field=CharField(),
        ),
        card_created_at=Coalesce(
            _Instant(_from_changes("created_at")), _Instant(F("batch__created_at"))
        ),
        expires_at=_Instant(_from_changes("expires_at")),
        # jsonb has true/false, SQLite's JSON 1/0.
        blocked=Case(
            When(Q(blocked_text__in=("true", "1")), then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        ),
    )


# --- Liability ----------------------------------------------------------------------------------

LIABILITY_GROUPINGS = {
    "currency": ("currency",),
    "reseller": ("currency", "reseller_id"),
    "series": ("currency", "reseller_id", "series"),
}


def liability_cards(*, as_of: dt.datetime) -> QuerySet:
    """Cards that could still be redeemed just before the instant `as_of` (an end of day), among
    those whose block, expiry and reseller have not changed since: a card Mass Edit changed at or
    after `as_of` is counted by `changed_liability` instead."""
    return TopUpCard.objects.filter(
        Q(activated_at__isnull=True) | Q(activated_at__gte=as_of),
        Q(blocked=False) | Q(reversed_at__gte=as_of),
        ~Exists(_changes_since(as_of).filter(card_id=OuterRef("pk"))),
        created_at__lt=as_of,
        expires_at__gte=as_of,
    )


# The audit events that change what liability reads: Mass Edit's edits (expires_at, reseller) and
# blocks. A reversal's block is dated by the card's own `reversed_at`.
STATE_EVENT_KINDS = (CardEventKind.EDITED, CardEventKind.BLOCKED, CardEventKind.UNBLOCKED)


def _changes_since(as_of: dt.datetime) -> QuerySet:
    """Block, expiry and reseller changes at or after `as_of` (the (kind, created_at) index)."""
    return CardEvent.objects.filter(kind__in=STATE_EVENT_KINDS, created_at__gte=as_of)


_CHANGED_SQL = """
WITH changes AS (
    SELECT e.card_id, e.kind, {old} AS old,
           CASE WHEN e.kind = 'edited' THEN {field} ELSE 'blocked' END AS field,
           ROW_NUMBER() OVER (
               PARTITION BY e.card_id, CASE WHEN e.kind = 'edited' THEN {field} ELSE 'blocked' END
               ORDER BY e.created_at, e.id
           ) AS n
    FROM {events} e
    WHERE e.kind IN ('edited', 'blocked', 'unblocked') AND e.created_at >= %s
      AND e.card_id IS NOT NULL
),
earliest AS (
    SELECT card_id,
           MAX(CASE WHEN field = 'blocked' THEN CASE WHEN kind = 'unblocked' THEN 1 ELSE 0 END END)
               AS blocked_then,
           MAX(CASE WHEN field = 'expires_at' THEN old END) AS expires_then,
           MAX(CASE WHEN field = 'reseller' THEN COALESCE(old, '-') END) AS reseller_then
    FROM changes WHERE n = 1 GROUP BY card_id
),
dated AS (
    SELECT c.id, c.amount, c.currency, c.series,
           CASE WHEN s.reseller_then IS NULL THEN c.reseller_id
                WHEN s.reseller_then = '-' THEN NULL
                ELSE CAST(s.reseller_then AS bigint) END AS reseller_id
    FROM earliest s JOIN {cards} c ON c.id = s.card_id
    WHERE c.created_at < %s AND (c.activated_at IS NULL OR c.activated_at >= %s)
      AND (COALESCE(s.blocked_then, CASE WHEN c.blocked THEN 1 ELSE 0 END) = 0
           OR c.reversed_at >= %s)
      AND {expires_then} >= {as_of}
)
SELECT {keys}, COUNT(*), SUM(amount) FROM dated WHERE {where} GROUP BY {keys}
"""

_DIALECTS = {
    # Text of a JSON key (NULL for a JSON null), and an instant from a column or JSON text.
    "postgresql": {
        "old": "e.changes ->> 'old'",
        "field": "e.changes ->> 'field'",
        "expires_then": "COALESCE(CAST(s.expires_then AS timestamptz), c.expires_at)",
        "as_of": "%s",
    },
    "sqlite": {
        "old": "json_extract(e.changes, '$.old')",
        "field": "json_extract(e.changes, '$.field')",
        # As `_Instant`: both sides as UTC text to the millisecond, whichever form they had.
        "expires_then": "strftime(%s, COALESCE(s.expires_then, c.expires_at))",
        "as_of": "strftime(%s, %s)",
    },
}


def changed_liability(
    *,
    as_of: dt.datetime,
    keys: tuple[str, ...],
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
) -> list[dict]:
    """Count and face value by `keys` of the cards Mass Edit changed (block, expiry or reseller)
    at or after `as_of`, read as they were just before it, by the rules of `liability_cards`.

    A field's value at `as_of` is the `old` value of the card's earliest change of that field at
    or after `as_of` (a row number over the changes since `as_of`, per card and field); a field
    not changed since is read from the card. The flag before a blocked event was false and before
    an unblocked one true (Mass Edit writes one only when the flag flips), so the kind says it. A
    reseller may have been none (a JSON null), which is not "unchanged". The reseller filter
    (a scoped user's too) applies to the reseller at `as_of`.

    One statement, set-based (window, GROUP BY per card, join to the cards by primary key,
    GROUP BY): the ORM cannot group the per-card rows again, and correlated subqueries per card
    were twice as slow on the bench (1M cards, 95,000 changes since a year ago).
    """
    vendor = connection.vendor
    dialect = _DIALECTS.get(vendor, _DIALECTS["postgresql"])
    instant = connection.ops.adapt_datetimefield_value(as_of)
    params: list = [instant, instant, instant, instant]
    if vendor == "sqlite":
        params += [_SQLITE_INSTANT, _SQLITE_INSTANT, instant]
    else:
        params += [instant]
    where = ["1 = 1"]
    for column, value in (("reseller_id", reseller_id), ("currency", currency), ("series", series)):
        if value not in (None, ""):
            where.append(f"{column} = %s")
            params.append(value)
    sql = _CHANGED_SQL.format(
        events=CardEvent._meta.db_table,
        cards=TopUpCard._meta.db_table,
        keys=", ".join(keys),
        where=" AND ".join(where),
        **dialect,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            {
                **dict(zip(keys, row[: len(keys)], strict=True)),
                "count": row[-2],
                "value": _money(row[-1]),
            }
            for row in cursor.fetchall()
        ]


def _money(value) -> Decimal:
    """A sum of amounts as a Decimal: SQLite's SUM answers a float (or an int) outside the ORM;
    quantized to the amount's places, as the ORM's own converter does."""
    if isinstance(value, Decimal):
        return value
    places = TopUpCard._meta.get_field("amount").decimal_places
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-places))


def liability(
    *,
    as_of: dt.datetime,
    group_by: str = "reseller",
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
) -> list[dict]:
    """Count and face value of redeemable cards at `as_of`, by currency (+ reseller, + series):
    three aggregates (unchanged cards, cards changed since, deleted cards) merged by group key."""
    keys = LIABILITY_GROUPINGS[group_by]
    aggregates = {"count": Count("id"), "value": Sum("amount")}
    queryset = _card_filters(
        liability_cards(as_of=as_of), reseller_id=reseller_id, currency=currency, series=series
    )
    rows = list(queryset.order_by().values(*keys).annotate(**aggregates))
    # The changed cards count for the reseller they had at `as_of` (so does a scoped user's view).
    changed_rows = changed_liability(
        as_of=as_of, keys=keys, reseller_id=reseller_id, currency=currency, series=series
    )
    deleted = _card_filters(
        deleted_liability(as_of=as_of), reseller_id=reseller_id, currency=currency, series=series
    )
    more = list(deleted.order_by().values(*keys).annotate(**aggregates))
    rows = _merge(rows, changed_rows, keys, tuple(aggregates))
    rows = _name_resellers(_merge(rows, more, keys, tuple(aggregates)))
    rows.sort(
        key=lambda r: (
            r["currency"],
            _reseller_order(r) if "reseller_id" in keys else (False, ""),
            r.get("series", ""),
        )
    )
    return rows


def deleted_liability(*, as_of: dt.datetime) -> QuerySet:
    """Deleted cards that could still be redeemed just before `as_of`, by the rules of
    `liability_cards`: deleted at or after the instant (a deletion at midnight exactly belongs to
    D + 1), created before it (or at an unknown time), not expired before it and not blocked when
    deleted. They were never redeemed (only such cards can be deleted). The deletion time is the
    event's own `created_at`, indexed with its kind, so only the deletions since `as_of` are read.
    """
    return deleted_cards().filter(
        Q(card_created_at__lt=_instant(as_of)) | Q(card_created_at__isnull=True),
        created_at__gte=as_of,
        expires_at__gte=_instant(as_of),
        blocked=False,
    )


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
    deleted = _card_filters(
        deleted_cards().filter(
            # Expired while the card still existed: one deleted at its expiry instant or before
            # is a deletion, not breakage.
            Q(expires_at__lt=_Instant(F("created_at"))),
            # So deleted after the period's start: the index on (kind, created_at) reads only
            # the deletions since then.
            created_at__gt=period.start,
            expires_at__gte=_instant(period.start),
            expires_at__lt=_instant(period.end),
            expires_at__lte=_instant(now),
        ),
        reseller_id=reseller_id,
        currency=currency,
        series=series,
    )
    extra = BREAKAGE_BREAKDOWNS[breakdown]
    aggregates = {
        "count": Count("id"),
        "value": Sum("amount"),
        "blocked_value": Sum("amount", filter=Q(blocked=True), default=ZERO),
    }
    keys = ("period", "currency", *extra)
    rows, more = (
        list(
            cards.order_by()
            .annotate(period=_trunc("expires_at", period.granularity))
            .values(*keys)
            .annotate(**aggregates)
        )
        for cards in (queryset, deleted)
    )
    return _finish_period_rows(_merge(rows, more, keys, tuple(aggregates)), extra)


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
