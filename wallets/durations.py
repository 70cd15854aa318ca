"""Relative validity values (rule E7): ISO 8601 durations such as `P4W`, `P1M`, `PT12H`."""

import calendar
import datetime as dt
import re
from dataclasses import dataclass

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

    def __str__(self) -> str:
        return self.text


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
