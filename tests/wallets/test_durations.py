import datetime as dt

import pytest

from wallets.durations import parse_duration

MOMENT = dt.datetime(2027, 1, 31, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P4W", MOMENT + dt.timedelta(weeks=4)),
        ("P10D", MOMENT + dt.timedelta(days=10)),
        ("PT36H", MOMENT + dt.timedelta(hours=36)),
        ("PT90M", MOMENT + dt.timedelta(minutes=90)),
        ("P1M", dt.datetime(2027, 2, 28, 12, 0, tzinfo=dt.UTC)),
        ("P1Y1M1DT1H1M1S", dt.datetime(2028, 3, 1, 13, 1, 1, tzinfo=dt.UTC)),
        ("-P1D", MOMENT - dt.timedelta(days=1)),
    ],
)
def test_iso_8601_durations_count_from_a_moment(text, expected):
    assert parse_duration(text).after(MOMENT) == expected


@pytest.mark.parametrize("text", ["P", "PT", "P1", "4W", "P1.5D", "P1DT", "PW", "P-1D", "P1S"])
def test_other_text_is_not_a_duration(text):
    assert parse_duration(text) is None


def test_a_duration_out_of_the_calendar_overflows():
    with pytest.raises(OverflowError):
        parse_duration("P9999Y").after(MOMENT)
