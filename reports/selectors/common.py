"""What every report shares: days and periods, the card filters, naming resellers
(docs/reports.md)."""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import DateField, DateTimeField, F, QuerySet
from django.db.models.functions import Trunc
from django.utils import timezone

from subscribers.models import Reseller

from ..models import DaySummary

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
    if isinstance(value, str):  # a date computed by SQLite
        return dt.date.fromisoformat(value[:10])
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


def day_summary_until(name: str) -> dt.date | None:
    """The first day the daily summary `name` does not hold; None when there is none, or when
    it was built in another time zone than the one the reports now use (its days would not be
    the report's days: everything is then computed live)."""
    state = DaySummary.objects.filter(name=name).values_list("until", "time_zone").first()
    if state is None or state[1] != timezone.get_current_timezone_name():
        return None
    return state[0]


def summary_period(granularity: str):
    """The period of a summary row's `day`, computed by the database (a day lies wholly in one
    ISO week and one month, so a week or month is the sum of its days)."""
    if granularity == Granularity.DAY:
        return F("day")
    return Trunc("day", granularity, output_field=DateField())
