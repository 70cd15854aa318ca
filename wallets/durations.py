"""ISO 8601 durations such as `P4W`, `P1M`, `PT12H`: relative validity values (rule E7) and the
period of a periodic balance template (docs/balance-rules.md, "Periodic intervals")."""

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

_DURATION = re.compile(
    r"^(?P<sign>[-+]?)P"
    r"(?:(?P<years>[0-9]{1,4})Y)?(?:(?P<months>[0-9]{1,5})M)?(?:(?P<weeks>[0-9]{1,6})W)?"
    r"(?:(?P<days>[0-9]{1,7})D)?"
    r"(?:T(?:(?P<hours>[0-9]{1,8})H)?(?:(?P<minutes>[0-9]{1,10})M)?(?:(?P<seconds>[0-9]{1,12})S)?)?$"
)


@dataclass(frozen=True)
class RelativeTime:
    """A calendar-aware offset: months are added on the calendar, the rest as a timedelta."""

    months: int = 0
    delta: dt.timedelta = dt.timedelta(0)
    text: str = ""

    def after(self, moment: dt.datetime) -> dt.datetime:
        if self.months:
            index = moment.year * 12 + moment.month - 1 + self.months
            year, month = divmod(index, 12)
            month += 1
            if not 1 <= year <= 9999:
                raise OverflowError("date out of range")
            day = min(moment.day, calendar.monthrange(year, month)[1])
            moment = moment.replace(year=year, month=month, day=day)
        return moment + self.delta

    def times(self, count: int) -> "RelativeTime":
        """This offset `count` times over, as one offset: counted from one anchor, month ends do
        not drift (31 Jan + 2 × P1M is 31 Mar, where stepping twice would give 28 Mar)."""
        return RelativeTime(months=self.months * count, delta=self.delta * count)

    @property
    def nominal(self) -> dt.timedelta:
        """An approximate length (a month as an average Gregorian month), for estimates only."""
        return dt.timedelta(days=AVERAGE_MONTH_DAYS * self.months) + self.delta

    def __str__(self) -> str:
        return self.text


AVERAGE_MONTH_DAYS = 365.2425 / 12
# An interval is a row: a shorter period would mean thousands of rows per balance and year.
SHORTEST_PERIOD = dt.timedelta(days=1)


def parse_duration(text: str) -> RelativeTime | None:
    """`P4W` → RelativeTime; None when `text` is not an ISO 8601 duration we support."""
    match = _DURATION.match(text)
    if not match or text.rstrip("T").endswith("P") or text.endswith("T"):
        return None
    parts = {name: int(value or 0) for name, value in match.groupdict().items() if name != "sign"}
    sign = -1 if match["sign"] == "-" else 1
    try:
        delta = dt.timedelta(
            weeks=parts["weeks"],
            days=parts["days"],
            hours=parts["hours"],
            minutes=parts["minutes"],
            seconds=parts["seconds"],
        )
    except OverflowError:
        return None
    return RelativeTime(
        months=sign * (parts["years"] * 12 + parts["months"]), delta=sign * delta, text=text
    )


def parse_period(text: str | None) -> RelativeTime | None:
    """A periodic template's period (`P1M`, `P1W`, `P30D`): a positive ISO 8601 duration of at
    least SHORTEST_PERIOD; None otherwise."""
    period = parse_duration(text or "")
    if period is None or period.months < 0 or period.delta < dt.timedelta(0):
        return None
    if period.months == 0 and period.delta < SHORTEST_PERIOD:
        return None
    return period


def validate_period(text: str) -> None:
    if parse_period(text) is None:
        raise ValidationError(
            "Enter an ISO 8601 duration of at least one day: P1M (a calendar month), P1W, "
            "P30D, P1Y.",
            code="invalid_period",
        )


@dataclass(frozen=True)
class PeriodGrid:
    """The boundaries `anchor + k × period` (k any integer) of a periodic balance's intervals.

    Each boundary is counted from the anchor, never from the previous boundary, so a grid anchored
    on 31 January gives 28 (29) February, 31 March, 30 April, 31 May. Months and days are added on
    the calendar of the anchor's time zone (pass it in local time).
    """

    anchor: dt.datetime
    period: RelativeTime

    def at(self, index: int) -> dt.datetime:
        return self.period.times(index).after(self.anchor)

    def index(self, moment: dt.datetime) -> int:
        """The k with at(k) <= moment < at(k + 1)."""
        index = int((moment - self.anchor) / self.period.nominal)
        while self.at(index) > moment:
            index -= 1
        while self.at(index + 1) <= moment:
            index += 1
        return index
