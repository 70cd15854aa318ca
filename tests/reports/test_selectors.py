"""Every figure of every report against the hand-computed fixture of conftest.py."""

import datetime as dt
from decimal import Decimal

import pytest

from cards.models import TopUpCard
from reports.selectors.balances import balance_flows, balance_totals
from reports.selectors.breakage import breakage
from reports.selectors.common import NO_RESELLER, Granularity, Period, end_of_day, periods
from reports.selectors.expiring import expiring
from reports.selectors.liability import liability
from reports.selectors.redemptions import redemptions
from tests.factories import CardEventFactory, ResellerFactory, TopUpCardFactory

from .conftest import DAY, HOUR, SECOND

pytestmark = pytest.mark.django_db

D = Decimal


def _liability(finance, day, **kwargs):
    return [
        (r["currency"], r.get("reseller"), r.get("series"), r["count"], r["value"])
        for r in liability(as_of=end_of_day(day), **kwargs)
    ]


class TestLiability:
    def test_as_of_the_report_day_by_currency_and_reseller(self, finance):
        # USD R1: c1 10 + c3 40 (redeemed at T) + c4 80 (expires at T) + c7 640 (created T-1s)
        # + c8 1280 (blocked: still owed) + c9 2560 (redeemed and reversed after D) + c10 5120
        # (its redemption reversed before T: owed again, blocked) + c11 3.
        assert _liability(finance, finance.day) == [
            ("EUR", "Reseller 1", None, 1, D("5")),
            ("USD", "Reseller 1", None, 8, D("9733")),
            ("USD", "Reseller 2", None, 1, D("7")),
            ("USD", NO_RESELLER, None, 1, D("11")),
        ]

    def test_by_series(self, finance):
        rows = _liability(finance, finance.day, group_by="series", currency="USD")
        assert rows[:2] == [
            ("USD", "Reseller 1", "100", 7, D("9730")),
            ("USD", "Reseller 1", "200", 1, D("3")),
        ]

    def test_by_currency(self, finance):
        assert _liability(finance, finance.day, group_by="currency") == [
            ("EUR", None, None, 1, D("5")),
            ("USD", None, None, 10, D("9751")),
        ]

    def test_the_day_before_and_after_reconcile_with_redemptions_breakage_and_new_cards(
        self, finance
    ):
        before = _liability(finance, finance.day - dt.timedelta(days=1), currency="USD")
        after = _liability(finance, finance.day + dt.timedelta(days=1), currency="USD")

        # D-1: c1 10 + c2 20 + c3 40 + c4 80 + c5 160 + c8 1280 + c9 2560 + c11 3 (c7 not
        # created yet, c10 redeemed on D-1 and reversed only at its close, c15 expired).
        assert before[0] == ("USD", "Reseller 1", None, 8, D("4153"))
        # 4153 + 640 created (c7) - 20 redeemed (c2) - 160 expired (c5) + 5120 reversed (c10).
        assert 4153 + 640 - 20 - 160 + 5120 == 9733
        # D+1: c1 10 + c6 320 (created at T) + c7 640 + c8 1280 + c9 2560 + c10 5120 + c11 3.
        assert after[0] == ("USD", "Reseller 1", None, 7, D("9933"))
        # 9733 + 320 created (c6) - 40 and 2560 redeemed (c3, c9) + 2560 reversed (c9) - 80
        # expired (c4) on D+1.
        assert 9733 + 320 - 40 - 2560 + 2560 - 80 == 9933

    def test_a_reseller_sees_only_its_cards(self, finance):
        assert _liability(finance, finance.day, reseller_id=finance.r2.pk) == [
            ("USD", "Reseller 2", None, 1, D("7"))
        ]

    def test_series_and_currency_filters(self, finance):
        assert _liability(finance, finance.day, series="300") == [
            ("EUR", "Reseller 1", None, 1, D("5"))
        ]
        assert _liability(finance, finance.day, currency="GBP") == []

    def test_operator_blocks_are_dated_by_their_audit_events(self, finance):
        """Blocked cards stay owed; "of which blocked" reads the flag as it was: a card blocked
        after D is not blocked on D, one unblocked after D is (the events as older code wrote
        them, without `changes`: the kind says what the flag was)."""
        r3 = ResellerFactory(name="Reseller 3")
        blocked = TopUpCardFactory(reseller=r3, amount=D("100"), created_at=finance.T - 10 * DAY)
        CardEventFactory(card=blocked, kind="blocked", created_at=finance.T + HOUR)
        TopUpCard.objects.filter(pk=blocked.pk).update(blocked=True)
        unblocked = TopUpCardFactory(reseller=r3, amount=D("200"), created_at=finance.T - 10 * DAY)
        CardEventFactory(card=unblocked, kind="blocked", created_at=finance.T - 2 * DAY)
        CardEventFactory(card=unblocked, kind="unblocked", created_at=finance.T + HOUR)

        def blocked_part(day):
            return [
                (r["count"], r["value"], r["blocked_value"])
                for r in liability(as_of=end_of_day(day), reseller_id=r3.pk)
            ]

        assert blocked_part(finance.day) == [(2, D("300"), D("200"))]
        assert blocked_part(finance.day + dt.timedelta(days=1)) == [(2, D("300"), D("100"))]

    def test_before_any_card_existed_nothing_is_owed(self, finance):
        assert _liability(finance, finance.day - dt.timedelta(days=30)) == []


class TestRedemptions:
    def period(self, finance, granularity=Granularity.DAY):
        return Period(
            date_from=finance.day - dt.timedelta(days=1),
            date_to=finance.day + dt.timedelta(days=1),
            granularity=granularity,
        )

    def test_per_day_by_channel(self, finance):
        rows = redemptions(period=self.period(finance), breakdown="channel")

        day = finance.day
        # c10 at T-2d (the first instant of D-1), c2 at T-1s, c3 at T exactly, c9 at T+1h.
        assert [
            (r["period"], r["currency"], r["channel"], r["count"], r["value"], r["reversed_value"])
            for r in rows
        ] == [
            (day - dt.timedelta(days=1), "USD", "rest", 1, D("5120"), D("5120")),
            (day, "USD", "panel", 1, D("20"), D("0")),
            (day + dt.timedelta(days=1), "USD", "panel", 1, D("2560"), D("2560")),
            (day + dt.timedelta(days=1), "USD", "rest", 1, D("40"), D("0")),
        ]

    def test_per_month(self, finance):
        rows = redemptions(period=self.period(finance, Granularity.MONTH))

        # D is the last day of its month: c10 and c2 fall in it, c3 and c9 in the next one.
        assert [(r["period"], r["count"], r["value"]) for r in rows] == [
            (finance.day.replace(day=1), 2, D("5140")),
            (finance.day + dt.timedelta(days=1), 2, D("2600")),
        ]

    def test_per_week(self, finance):
        rows = redemptions(period=self.period(finance, Granularity.WEEK))

        def monday(day):
            return day - dt.timedelta(days=day.weekday())

        # c10 on D-1 (5120), c2 on D (20), c3 and c9 on D+1 (40 + 2560): summed per ISO week.
        weeks: dict[dt.date, tuple[int, Decimal]] = {}
        for day, count, value in (
            (finance.day - dt.timedelta(days=1), 1, D(5120)),
            (finance.day, 1, D(20)),
            (finance.day + dt.timedelta(days=1), 2, D(2600)),
        ):
            old_count, old_value = weeks.get(monday(day), (0, D(0)))
            weeks[monday(day)] = (old_count + count, old_value + value)
        assert [(r["period"], r["count"], r["value"]) for r in rows] == [
            (week, count, value) for week, (count, value) in sorted(weeks.items())
        ]

    def test_by_reseller_and_series_together(self, finance):
        TopUpCardFactory(
            reseller=finance.r2,
            series="200",
            amount=D("9"),
            created_at=finance.T - 3 * DAY,
            activated_at=finance.T - HOUR,
            activated_by=finance.balances["r2"].wallet.subscription.subscriber,
        )
        one_day = Period(date_from=finance.day, date_to=finance.day, granularity=Granularity.DAY)

        rows = redemptions(period=one_day, breakdown="reseller_series")

        assert [(r["reseller"], r["series"], r["count"], r["value"]) for r in rows] == [
            ("Reseller 1", "100", 1, D("20")),
            ("Reseller 2", "200", 1, D("9")),
        ]
        channels = redemptions(period=one_day, breakdown="reseller_channel")
        # The new card has no ledger entry (made by hand here): its channel is unknown.
        assert [(r["reseller"], r["channel"]) for r in channels] == [
            ("Reseller 1", "panel"),
            ("Reseller 2", "(unknown)"),
        ]

    def test_channel_filter_and_series_breakdown(self, finance):
        rows = redemptions(period=self.period(finance), breakdown="series", channel="panel")

        assert [(r["period"], r["series"], r["value"]) for r in rows] == [
            (finance.day, "100", D("20")),
            (finance.day + dt.timedelta(days=1), "100", D("2560")),
        ]

    def test_by_reseller_and_scope(self, finance):
        rows = redemptions(period=self.period(finance), breakdown="reseller")
        assert {r["reseller"] for r in rows} == {"Reseller 1"}
        assert redemptions(period=self.period(finance), reseller_id=finance.r2.pk) == []

    def test_a_single_day_excludes_what_happened_at_its_closing_instant(self, finance):
        one_day = Period(date_from=finance.day, date_to=finance.day, granularity=Granularity.DAY)
        rows = redemptions(period=one_day)
        assert [(r["count"], r["value"]) for r in rows] == [(1, D("20"))]  # c2, not c3 at T


class TestBreakage:
    def period(self, finance):
        return Period(
            date_from=finance.day - dt.timedelta(days=6),
            date_to=finance.day + dt.timedelta(days=1),
            granularity=Granularity.DAY,
        )

    def test_cards_expired_unredeemed_per_day(self, finance):
        rows = breakage(period=self.period(finance), now=finance.T + DAY)

        day = finance.day
        # c15 (blocked) expired at T-5d = start of D-4; c5 at T-1s; c4 exactly at T (so on D+1).
        assert [
            (r["period"], r["currency"], r["count"], r["value"], r["blocked_value"]) for r in rows
        ] == [
            (day - dt.timedelta(days=4), "USD", 1, D("0.50"), D("0.50")),
            (day, "USD", 1, D("160"), D("0")),
            (day + dt.timedelta(days=1), "USD", 1, D("80"), D("0")),
        ]

    def test_only_expiries_that_already_happened(self, finance):
        rows = breakage(period=self.period(finance), now=finance.T - SECOND / 2)
        assert [r["value"] for r in rows] == [D("0.50"), D("160")]  # c4 expires at T: not yet

    def test_by_series_and_scope(self, finance):
        rows = breakage(period=self.period(finance), now=finance.T + DAY, breakdown="series")
        assert {r["series"] for r in rows} == {"100"}
        both = breakage(
            period=self.period(finance), now=finance.T + DAY, breakdown="reseller_series"
        )
        assert [(r["reseller"], r["series"], r["value"]) for r in both] == [
            ("Reseller 1", "100", D("0.50")),
            ("Reseller 1", "100", D("160")),
            ("Reseller 1", "100", D("80")),
        ]
        other = breakage(
            period=self.period(finance), now=finance.T + DAY, reseller_id=finance.r2.pk
        )
        assert other == []


class TestExpiring:
    def test_windows_of_7_30_and_90_days(self, finance):
        rows = expiring(now=finance.T)

        def figures(row):
            return [row[f"{kind}_{days}"] for days in (7, 30, 90) for kind in ("count", "value")]

        # R1: c7 640 at T+5d; c1 10 and c6 320 at T+30d; c11 3 at T+60d (c13 EUR at T+100d is
        # beyond 90 days, c4 expires at T exactly: no longer redeemable, c8 is blocked).
        assert [(r["currency"], r["reseller"], figures(r)) for r in rows] == [
            ("USD", "Reseller 1", [1, D("640"), 3, D("970"), 4, D("973")]),
            ("USD", "Reseller 2", [1, D("7"), 1, D("7"), 1, D("7")]),
            ("USD", NO_RESELLER, [0, D("0"), 1, D("11"), 1, D("11")]),
        ]

    def test_scope_and_series(self, finance):
        rows = expiring(now=finance.T, reseller_id=finance.r2.pk, group_by="series")
        assert [(r["reseller"], r["series"], r["value_90"]) for r in rows] == [
            ("Reseller 2", "100", D("7"))
        ]


class TestBalances:
    def test_totals_per_currency_and_template(self, finance):
        rows = balance_totals()
        assert [(r["currency"], r["template"], r["count"], r["value"]) for r in rows] == [
            ("MB", "Data MB", 1, D("1024")),
            ("USD", "Group USD", 1, D("7")),
            ("USD", "Main USD", 2, D("150")),
        ]

    def test_a_reseller_sees_its_subscribers_balances_only(self, finance):
        rows = balance_totals(reseller_id=finance.r1.pk)
        assert [(r["currency"], r["template"], r["value"]) for r in rows] == [
            ("MB", "Data MB", D("1024")),
            ("USD", "Main USD", D("100")),
        ]

    def flows(self, finance, **kwargs):
        period = Period(
            date_from=finance.day,
            date_to=finance.day + dt.timedelta(days=1),
            granularity=kwargs.pop("granularity", Granularity.DAY),
        )
        keys = ("topups", "redemptions", "adjustments_credit", "adjustments_debit", "reversals")
        return [
            (r["period"], r["currency"], *(r[k] for k in keys), r["net"], r["entries"])
            for r in balance_flows(period=period, **kwargs)
        ]

    def test_topups_versus_adjustments_per_day(self, finance):
        day = finance.day
        # D: top-ups 25 + 9, card redemption c2 20, adjustments +5 +1, c10's reversal at T-1d.
        # D+1: redemptions c3 40 + c9 2560, c9's reversal, adjustment -3.
        assert self.flows(finance) == [
            (day, "USD", D(34), D(20), D(6), D(0), D(-5120), D(-5060), 6),
            (day + dt.timedelta(days=1), "USD", D(0), D(2600), D(0), D(-3), D(-2560), D(37), 4),
        ]

    def test_flows_of_one_reseller(self, finance):
        rows = self.flows(finance, reseller_id=finance.r1.pk)
        assert rows[0][1:] == ("USD", D(25), D(20), D(5), D(0), D(-5120), D(-5070), 4)
        assert rows[1][-2:] == (D(37), 4)

    def test_per_month_and_template_filter(self, finance):
        rows = self.flows(finance, granularity=Granularity.MONTH)
        assert [(r[0], r[-2]) for r in rows] == [
            (finance.day.replace(day=1), D(-5060)),
            (finance.day + dt.timedelta(days=1), D(37)),
        ]
        group_template = finance.balances["group"].template
        rows = self.flows(finance, template_id=group_template.pk)
        assert [(r[4], r[-2]) for r in rows] == [(D(1), D(1))]


def test_periods_cover_every_step_of_the_range():
    start = dt.date(2026, 1, 30)
    assert periods(start, dt.date(2026, 2, 2), Granularity.DAY) == [
        dt.date(2026, 1, 30),
        dt.date(2026, 1, 31),
        dt.date(2026, 2, 1),
        dt.date(2026, 2, 2),
    ]
    assert periods(start, dt.date(2026, 3, 1), Granularity.MONTH) == [
        dt.date(2026, 1, 1),
        dt.date(2026, 2, 1),
        dt.date(2026, 3, 1),
    ]
    assert periods(start, dt.date(2026, 2, 9), Granularity.WEEK) == [
        dt.date(2026, 1, 26),
        dt.date(2026, 2, 2),
        dt.date(2026, 2, 9),
    ]


def test_reports_run_a_fixed_number_of_queries_whatever_the_card_count(
    finance, django_assert_max_num_queries
):
    cards = TopUpCardFactory.create_batch(20, reseller=finance.r1, created_at=finance.T - DAY)
    for card in cards[:10]:
        CardEventFactory(card=card, kind="blocked", created_at=finance.T + HOUR)
    period = Period(finance.day, finance.day, Granularity.DAY)
    # The summary's state; the unchanged cards (an aggregate per kind: issued, deliveries,
    # breakage, redeemed; the reversals since, the reversed cards); the changes, the cards
    # changed, the deletions; the resellers' names.
    with django_assert_max_num_queries(11):
        liability(as_of=finance.T)
    with django_assert_max_num_queries(11):
        breakage(period=period, breakdown="reseller")
    # The summary's state, the cards' aggregate, the resellers' names.
    with django_assert_max_num_queries(3):
        redemptions(period=period, breakdown="reseller")
    with django_assert_max_num_queries(2):
        expiring(now=finance.T + HOUR)


def test_days_follow_the_current_time_zone(finance):
    """At 20:00 UTC on D it is already D + 1 in Tokyo (UTC+9): the redemption moves a day."""
    from django.utils import timezone

    card = TopUpCardFactory(
        reseller=finance.r2,
        amount=D("9"),
        created_at=finance.T - 3 * DAY,
        activated_at=finance.T - 4 * HOUR,
        activated_by=finance.balances["r2"].wallet.subscription.subscriber,
    )
    day = finance.day
    period = Period(day, day + dt.timedelta(days=1), Granularity.DAY)

    utc = redemptions(period=period, reseller_id=finance.r2.pk)
    with timezone.override("Asia/Tokyo"):
        tokyo = redemptions(period=period, reseller_id=finance.r2.pk)
        owed_end_of_d = liability(as_of=end_of_day(day), reseller_id=finance.r2.pk, currency="USD")

    assert [(r["period"], r["value"]) for r in utc] == [(day, card.amount)]
    assert [(r["period"], r["value"]) for r in tokyo] == [(day + dt.timedelta(days=1), card.amount)]
    # The end of D in Tokyo is 15:00 UTC on D: the card, redeemed at 20:00 UTC, was still owed.
    assert [(r["count"], r["value"]) for r in owed_end_of_d] == [(2, D("16"))]  # c12 7 + 9
