"""What every report shares: days and periods, the card filters, naming resellers, merging the
rows of two aggregates, and datetimes read from JSON text on either database (docs/reports.md)."""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import DateTimeField, Func, QuerySet, Value
from django.db.models.functions import Trunc
from django.utils import timezone

from subscribers.models import Reseller

ZERO = Decimal("0")
NO_RESELLER = "(no reseller)"
NO_CHANNEL = "(unknown)"

# The groupings of the reports that count cards as of one instant (Liability, Expiring soon).
CARD_GROUPINGS = {
    "currency": ("currency",),
    "reseller": ("currency", "reseller_id"),
    "series": ("currency", "reseller_id", "series"),
}


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


def trunc(field: str, granularity: str) -> Trunc:
    return Trunc(
        field, granularity, output_field=DateTimeField(), tzinfo=timezone.get_current_timezone()
    )


def as_date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return value


def card_filters(
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


def _reseller_names(ids: Iterable[int | None]) -> dict[int | None, str]:
    names: dict[int | None, str] = {None: NO_RESELLER}
    wanted = {i for i in ids if i is not None}
    if wanted:
        names.update(Reseller.objects.filter(pk__in=wanted).values_list("pk", "name"))
    return names


def reseller_order(row: dict) -> tuple[bool, str]:
    """Sort key: resellers by name, cards without a reseller last."""
    return (row["reseller_id"] is None, row["reseller"])


def name_resellers(rows: list[dict]) -> list[dict]:
    if rows and "reseller_id" in rows[0]:
        names = _reseller_names(row["reseller_id"] for row in rows)
        for row in rows:
            # A deleted card may name a reseller deleted since: its id, not "(no reseller)".
            row["reseller"] = names.get(
                row["reseller_id"], f"(deleted reseller {row['reseller_id']})"
            )
    return rows


def merge(rows: list[dict], more: list[dict], keys: tuple[str, ...], sums: tuple[str, ...]):
    """Add the rows of a second aggregate (changed or deleted cards) into the first, key by key:
    a loop over groups, not over cards."""
    for row in rows + more:
        if "period" in row:
            row["period"] = as_date(row["period"])
    merged = {tuple(row[k] for k in keys): row for row in rows}
    for row in more:
        key = tuple(row[k] for k in keys)
        if key in merged:
            for name in sums:
                merged[key][name] += row[name]
        else:
            merged[key] = row
    return list(merged.values())


def finish_period_rows(rows: list[dict], breakdown_keys: tuple[str, ...] = ()) -> list[dict]:
    """Rows per period as the tables read them: dated, resellers named, in a stable order."""
    for row in rows:
        row["period"] = as_date(row["period"])
    rows = name_resellers(rows)

    def order(row: dict) -> list[tuple[bool, str]]:
        return [
            reseller_order(row) if key == "reseller_id" else (False, str(row[key]))
            for key in breakdown_keys
        ]

    rows.sort(key=lambda r: (r["period"], r["currency"], order(r)))
    return rows


SQLITE_INSTANT = "%Y-%m-%d %H:%M:%f"  # UTC text to the millisecond


class Instant(Func):
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
        return sql, (SQLITE_INSTANT, *params)


def instant(value: dt.datetime) -> Instant:
    """A Python datetime on the same footing as an `Instant` read from JSON."""
    return Instant(Value(value, output_field=DateTimeField()))
