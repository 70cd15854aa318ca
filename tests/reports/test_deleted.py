"""Cards deleted by Mass Edit (Delete all) still count on the days before their deletion.

The finance fixture of conftest.py (D = end of last month, T = first instant of D + 1) plus these
cards, each deleted through `cards_mass_delete` (so its audit event is written as in production)
and then dated by moving the event's time. Amounts are distinct powers of two times 10,000.

| card | reseller | cur | series | amount   | created | expires | deleted | other |
|------|----------|-----|--------|----------|---------|---------|---------|-------|
| d1   | R1 | USD | 100 | 10000    | T-10d | T+30d  | T exactly | |
| d2   | R1 | USD | 100 | 20000    | T-10d | T+30d  | T-1s      | |
| d3   | R1 | USD | 100 | 40000    | T-10d | T-1s   | T+2d      | |
| d4   | R1 | USD | 100 | 80000    | T-10d | T+30d  | T+2d      | blocked |
| d5   | R1 | USD | 100 | 160000   | T-10d | T-2d   | T+2d      | blocked |
| d6   | R1 | USD | 100 | 320000   | T     | T+30d  | T+2d      | |
| d7   | R2 | USD | 100 | 640000   | T-10d | T+30d  | T+2d      | |
| d8   | R1 | EUR | 300 | 1280000  | T-10d | T+100d | T+2d      | |
| d9   | R1 | USD | 100 | 2560000  | T-10d | T-1s   | T-2d      | |
| d10  | R1 | USD | 100 | 5120000  | T-10d | T-12h  | T-12h     | |
| d11  | R1 | USD | 500 | 10240000 | T-3d  | T+30d  | T+2d      | old-style event, batch made T-3d |
| d12  | R1 | GBP | 600 | 20480000 | T-10d | T+30d  | T+2d      | old-style event, no batch |
| d13  | R2 | USD | 700 | 40960000 | T-10d | T-6h   | T+2d      | |

"Old-style" events are those written before the deletion event recorded the card's creation time,
series and blocked flag: the test removes those keys.
"""

import datetime as dt
from decimal import Decimal

import pytest

from cards.models import CardEvent, TopUpCard
from cards.models.events import CardEventKind
from cards.services.mass_edit import cards_mass_delete
from reports.selectors.breakage import breakage
from reports.selectors.common import Granularity, Period, end_of_day
from reports.selectors.liability import liability
from tests.factories import CardBatchFactory, TopUpCardFactory

from .conftest import DAY, HOUR, SECOND
from .test_admin import csv_rows, url

pytestmark = pytest.mark.django_db

D = Decimal
OLD_STYLE_MISSING = ("created_at", "series", "blocked")


def _delete(card: TopUpCard, at: dt.datetime, *, old_style: bool = False) -> None:
    assert cards_mass_delete(cards=TopUpCard.objects.filter(pk=card.pk), actor=None) == 1
    event = CardEvent.objects.get(kind=CardEventKind.DELETED, serial=card.serial)
    event.created_at = at
    if old_style:
        for key in OLD_STYLE_MISSING:
            event.changes.pop(key, None)
    event.save()


@pytest.fixture
def deletions(finance):
    T, r1, r2 = finance.T, finance.r1, finance.r2
    specs = [
        # name, amount, reseller, currency, series, created, expires, deleted, extra
        ("d1", "10000", r1, "USD", "100", T - 10 * DAY, T + 30 * DAY, T, {}),
        ("d2", "20000", r1, "USD", "100", T - 10 * DAY, T + 30 * DAY, T - SECOND, {}),
        ("d3", "40000", r1, "USD", "100", T - 10 * DAY, T - SECOND, T + 2 * DAY, {}),
        ("d4", "80000", r1, "USD", "100", T - 10 * DAY, T + 30 * DAY, T + 2 * DAY, {"b": 1}),
        ("d5", "160000", r1, "USD", "100", T - 10 * DAY, T - 2 * DAY, T + 2 * DAY, {"b": 1}),
        ("d6", "320000", r1, "USD", "100", T, T + 30 * DAY, T + 2 * DAY, {}),
        ("d7", "640000", r2, "USD", "100", T - 10 * DAY, T + 30 * DAY, T + 2 * DAY, {}),
        ("d8", "1280000", r1, "EUR", "300", T - 10 * DAY, T + 100 * DAY, T + 2 * DAY, {}),
        ("d9", "2560000", r1, "USD", "100", T - 10 * DAY, T - SECOND, T - 2 * DAY, {}),
        ("d10", "5120000", r1, "USD", "100", T - 10 * DAY, T - 12 * HOUR, T - 12 * HOUR, {}),
        ("d11", "10240000", r1, "USD", "500", T - 3 * DAY, T + 30 * DAY, T + 2 * DAY, {"old": 1}),
        ("d12", "20480000", r1, "GBP", "600", T - 10 * DAY, T + 30 * DAY, T + 2 * DAY, {"old": 2}),
        ("d13", "40960000", r2, "USD", "700", T - 10 * DAY, T - 6 * HOUR, T + 2 * DAY, {}),
    ]
    for _name, amount, reseller, currency, series, created, expires, deleted, extra in specs:
        batch = None
        if extra.get("old") == 1:
            batch = CardBatchFactory(series=series, reseller=reseller, created_at=created)
        card = TopUpCardFactory(
            amount=D(amount),
            reseller=reseller,
            currency=currency,
            series=series,
            created_at=created,
            expires_at=expires,
            blocked=bool(extra.get("b")),
            batch=batch,
        )
        _delete(card, deleted, old_style="old" in extra)
    assert not TopUpCard.objects.filter(amount__gte=10000).exists()
    return finance


def _liability(day, **kwargs):
    return [
        (r["currency"], r.get("reseller"), r.get("series"), r["count"], r["value"])
        for r in liability(as_of=end_of_day(day), **kwargs)
    ]


class TestLiability:
    def test_cards_deleted_after_the_day_still_count_on_it(self, deletions):
        # Besides the fixture's cards: EUR d8; GBP d12; USD R1 d1 (deleted at T exactly), d4
        # (blocked: still owed) and d11; USD R2 d7. Not d2 (deleted before T), d3 (expired),
        # d6 (created at T), d9/d10 (deleted before T), d13 (expired).
        assert _liability(deletions.day) == [
            ("EUR", "Reseller 1", None, 2, D("1280005")),
            ("GBP", "Reseller 1", None, 1, D("20480000")),
            ("USD", "Reseller 1", None, 11, D("10339733")),
            ("USD", "Reseller 2", None, 2, D("640007")),
            ("USD", "(no reseller)", None, 1, D("11")),
        ]

    def test_not_on_a_day_after_the_deletion(self, deletions):
        day = deletions.day
        # D+1: the fixture's 9933 + d4 + d6 (created at T, deleted T+2d) + d11; d1 went at T.
        assert _liability(
            day + dt.timedelta(days=1), currency="USD", reseller_id=deletions.r1.pk
        ) == [("USD", "Reseller 1", None, 10, D("10649933"))]
        # D+2 closes at T+2d, the instant the others went: that belongs to D+3, so they are
        # still owed on D+2 and gone on D+3, when only the fixture's cards are left.
        r1_usd = {"currency": "USD", "reseller_id": deletions.r1.pk}
        assert _liability(day + dt.timedelta(days=2), **r1_usd) == [
            ("USD", "Reseller 1", None, 10, D("10649933"))
        ]
        assert _liability(day + dt.timedelta(days=3), **r1_usd) == [
            ("USD", "Reseller 1", None, 7, D("9933"))
        ]

    def test_the_day_before(self, deletions):
        # D-1 (closing at T-1d): the fixture's 4153 + d1, d2, d3 (expires T-1s), d4 (blocked),
        # d10 (deleted and expiring T-12h) and d11 (batch made T-3d); not d9 (deleted T-2d)
        # nor d5 (expired T-2d).
        rows = _liability(deletions.day - dt.timedelta(days=1), currency="USD")
        assert rows[0] == ("USD", "Reseller 1", None, 14, D("15514153"))
        assert 4153 + 10000 + 20000 + 40000 + 80000 + 5120000 + 10240000 == 15514153
        # R2: c12 7 + d7 + d13 (expires T-6h).
        assert rows[1] == ("USD", "Reseller 2", None, 3, D("41600007"))

    def test_by_series_and_by_currency(self, deletions):
        assert _liability(deletions.day, group_by="series", currency="USD") == [
            ("USD", "Reseller 1", "100", 9, D("99730")),
            ("USD", "Reseller 1", "200", 1, D("3")),
            ("USD", "Reseller 1", "500", 1, D("10240000")),
            ("USD", "Reseller 2", "100", 2, D("640007")),
            ("USD", "(no reseller)", "100", 1, D("11")),
        ]
        assert _liability(deletions.day, group_by="currency") == [
            ("EUR", None, None, 2, D("1280005")),
            ("GBP", None, None, 1, D("20480000")),
            ("USD", None, None, 14, D("10979751")),
        ]

    def test_filters_apply_to_deleted_cards(self, deletions):
        day = deletions.day
        assert _liability(day, reseller_id=deletions.r2.pk) == [
            ("USD", "Reseller 2", None, 2, D("640007"))
        ]
        assert _liability(day, currency="EUR") == [("EUR", "Reseller 1", None, 2, D("1280005"))]
        assert _liability(day, series="500") == [("USD", "Reseller 1", None, 1, D("10240000"))]
        assert _liability(day, series="600", currency="USD") == []

    def test_an_old_style_event_takes_creation_time_and_series_from_its_batch(self, deletions):
        # d11's batch was made at T-3d, the close of D-3: not owed on D-3, owed from D-2.
        day = deletions.day
        assert _liability(day - dt.timedelta(days=3), series="500") == []
        assert _liability(day - dt.timedelta(days=2), group_by="series", series="500") == [
            ("USD", "Reseller 1", "500", 1, D("10240000"))
        ]

    def test_an_old_style_event_without_batch_counts_on_every_day_before_its_deletion(
        self, deletions
    ):
        """Documented: d12's creation time is unknown (no batch), so it counts as created before
        any date; its series comes from its serial."""
        assert _liability(
            deletions.day - dt.timedelta(days=30), group_by="series", currency="GBP"
        ) == [("GBP", "Reseller 1", "600", 1, D("20480000"))]

    def test_a_reseller_scoped_user_sees_only_its_deleted_cards(self, deletions, r1_client):
        response = r1_client.get(
            url("liabilityreport"), {"as_of": deletions.day, "group_by": "series", "format": "csv"}
        )
        assert csv_rows(response) == [
            [
                "Currency",
                "Reseller",
                "Series",
                "Cards",
                "Liability",
                "of which blocked",
                "of which dormant",
            ],
            ["EUR", "Reseller 1", "300", "2", "1280005.00", "0.00", "0.00"],
            ["GBP", "Reseller 1", "600", "1", "20480000.00", "0.00", "0.00"],
            ["USD", "Reseller 1", "100", "9", "99730.00", "86400.00", "0.00"],
            ["USD", "Reseller 1", "200", "1", "3.00", "0.00", "0.00"],
            ["USD", "Reseller 1", "500", "1", "10240000.00", "0.00", "0.00"],
            ["EUR", "Total", "", "2", "1280005.00", "0.00", "0.00"],
            ["GBP", "Total", "", "1", "20480000.00", "0.00", "0.00"],
            ["USD", "Total", "", "11", "10339733.00", "86400.00", "0.00"],
        ]


class TestBreakage:
    def period(self, finance):
        return Period(
            date_from=finance.day - dt.timedelta(days=6),
            date_to=finance.day + dt.timedelta(days=1),
            granularity=Granularity.DAY,
        )

    def test_a_deleted_card_that_expired_stays_in_its_period(self, deletions):
        rows = breakage(period=self.period(deletions), now=deletions.T + DAY)

        day = deletions.day
        # D-1: d5 (blocked) expired at T-2d. D: c5 160 + d3 40000 + d13 40960000 + d10 (it
        # expired at the instant it was deleted: the expiry comes first). Not d9: deleted before
        # its expiry.
        assert [
            (r["period"], r["currency"], r["count"], r["value"], r["blocked_value"]) for r in rows
        ] == [
            (day - dt.timedelta(days=4), "USD", 1, D("0.50"), D("0.50")),
            (day - dt.timedelta(days=1), "USD", 1, D("160000"), D("160000")),
            (day, "USD", 4, D("46120160"), D("0")),
            (day + dt.timedelta(days=1), "USD", 1, D("80"), D("0")),
        ]

    def test_per_month_after_the_deletion(self, deletions):
        """Months later, D's month still holds the deleted cards' breakage."""
        month = Period(
            date_from=deletions.day.replace(day=1),
            date_to=deletions.day,
            granularity=Granularity.MONTH,
        )
        rows = breakage(period=month, now=deletions.T + 90 * DAY)
        assert [(r["period"], r["count"], r["value"], r["blocked_value"]) for r in rows] == [
            (deletions.day.replace(day=1), 6, D("46280160.50"), D("160000.50"))
        ]

    def test_breakdowns_filters_and_scope(self, deletions):
        period, now = self.period(deletions), deletions.T + DAY
        both = breakage(period=period, now=now, breakdown="reseller_series")
        assert [(r["period"], r["reseller"], r["series"], r["value"]) for r in both] == [
            (deletions.day - dt.timedelta(days=4), "Reseller 1", "100", D("0.50")),
            (deletions.day - dt.timedelta(days=1), "Reseller 1", "100", D("160000")),
            (deletions.day, "Reseller 1", "100", D("5160160")),
            (deletions.day, "Reseller 2", "700", D("40960000")),
            (deletions.day + dt.timedelta(days=1), "Reseller 1", "100", D("80")),
        ]
        for kwargs in ({"reseller_id": deletions.r2.pk}, {"series": "700"}):
            rows = breakage(period=period, now=now, **kwargs)
            assert [(r["period"], r["count"], r["value"]) for r in rows] == [
                (deletions.day, 1, D("40960000"))
            ], kwargs
        assert breakage(period=period, now=now, currency="EUR") == []


def test_datetimes_in_either_databases_json_form_compare_as_instants(finance):
    """PostgreSQL writes "2026-03-01T01:00:00+00:00" into the event, SQLite "2026-03-01
    01:00:00"; an event moved between them (dumpdata/loaddata) keeps its form. Either is read as
    an instant: 01:00+02:00 on D+1's date is 23:00 UTC on D, so the card was created before T."""
    T = finance.T
    card = TopUpCardFactory(amount=D("10000"), reseller=finance.r2, created_at=T - DAY)
    _delete(card, T + DAY)
    event = CardEvent.objects.get(kind=CardEventKind.DELETED)
    offset = dt.timezone(dt.timedelta(hours=2))
    event.changes["created_at"] = (T - HOUR).astimezone(offset).isoformat()
    event.changes["expires_at"] = T.strftime("%Y-%m-%d %H:%M:%S")  # expires at T: owed on D
    event.save()

    assert event.changes["created_at"].endswith("T01:00:00+02:00")
    assert _liability(finance.day, reseller_id=finance.r2.pk) == [
        ("USD", "Reseller 2", None, 2, D("10007"))
    ]
    # On D+1 it had expired (at T): breakage of D+1, while it still existed.
    assert _liability(finance.day + dt.timedelta(days=1), reseller_id=finance.r2.pk) == [
        ("USD", "Reseller 2", None, 1, D("7"))
    ]
    period = Period(finance.day + dt.timedelta(days=1), finance.day + dt.timedelta(days=1), "day")
    assert [r["value"] for r in breakage(period=period, now=T + DAY)] == [D("10080")]
