"""Periodic balances keep an interval for "now" for as long as they live (docs/balance-rules.md,
"Periodic intervals"): made from the template's period when a top-up, an adjustment or a reading
needs one, ahead of time by the worker's recurring task, and when S2 or E3 adds time.

Time is moved by patching django.utils.timezone.now (the `clock` fixture): no sleeps."""

import datetime as dt
import threading
from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone

from tests.factories import BalanceFactory, BalanceTemplateFactory, SubscriberFactory, WalletFactory
from tests.wallets.conftest import basic_auth, make_client_user, snapshot
from wallets.durations import PeriodGrid, parse_duration, parse_period
from wallets.exceptions import BadData
from wallets.models import Balance, BalanceInterval, BalanceKind, BalanceTemplate, LedgerEntry
from wallets.selectors import subscriber_balances
from wallets.services.adjust import AdjustType, balance_adjust
from wallets.services.intervals import INTERVALS_AHEAD, INTERVALS_BEHIND, balance_intervals_ensure
from wallets.services.topup import balance_topup
from wallets.services.validity import balance_change_end, balance_change_start
from wallets.tasks import EVERY, extend_periodic_intervals, intervals_schedule

UTC = dt.UTC
DAY = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


class Clock:
    def __init__(self, moment: dt.datetime):
        self.now = moment

    def set(self, moment: dt.datetime) -> None:
        self.now = moment


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(at(2027, 1, 31, 10))
    monkeypatch.setattr(timezone, "now", lambda: clock.now)
    return clock


def periodic(period="P1M", *, start, end=None, precision=0, wallet=None) -> Balance:
    template = BalanceTemplateFactory(
        kind=BalanceKind.PERIODIC, period=period, currency="MB", precision=precision
    )
    return BalanceFactory(
        template=template, start_time=start, end_time=end, wallet=wallet or WalletFactory()
    )


def spans(balance) -> list[tuple[dt.datetime, dt.datetime]]:
    return list(balance.intervals.order_by("start_time").values_list("start_time", "end_time"))


def assert_contiguous(balance, *, covers_until: dt.datetime) -> None:
    """No gap, no overlap, from the balance's start to `covers_until` (or its end)."""
    balance.refresh_from_db()
    found = spans(balance)
    assert found[0][0] <= balance.start_time
    for (_, end), (start, _) in zip(found, found[1:], strict=False):
        assert end == start
    limit = covers_until if balance.end_time is None else min(balance.end_time, covers_until)
    assert found[-1][1] > limit


def assert_contiguous_from(balance, first: dt.datetime, *, covers_until: dt.datetime) -> None:
    found = spans(balance)
    assert found[0][0] == first
    for (_, end), (start, _) in zip(found, found[1:], strict=False):
        assert end == start
    assert found[-1][1] > covers_until


def check_ledger() -> None:
    out = StringIO()
    call_command("check_ledger", stdout=out, stderr=out)
    assert "Ledger OK" in out.getvalue()


# --- Period arithmetic ------------------------------------------------------------------------


def test_monthly_boundaries_follow_the_31st_through_short_months_and_leap_february():
    grid = PeriodGrid(at(2027, 1, 31, 10), parse_period("P1M"))

    boundaries = [grid.at(k).date().isoformat() for k in range(0, 15)]

    assert boundaries == [
        "2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31", "2027-06-30",
        "2027-07-31", "2027-08-31", "2027-09-30", "2027-10-31", "2027-11-30", "2027-12-31",
        "2028-01-31", "2028-02-29", "2028-03-31",
    ]  # fmt: skip
    assert {grid.at(k).time() for k in range(15)} == {dt.time(10)}


def test_a_leap_day_anchor_keeps_the_29th_where_it_exists():
    yearly = PeriodGrid(at(2028, 2, 29), parse_period("P1Y"))
    monthly = PeriodGrid(at(2028, 2, 29), parse_period("P1M"))

    assert [yearly.at(k).date().isoformat() for k in range(5)] == [
        "2028-02-29", "2029-02-28", "2030-02-28", "2031-02-28", "2032-02-29",
    ]  # fmt: skip
    assert [monthly.at(k).date().isoformat() for k in (1, 11, 12, 13)] == [
        "2028-03-29", "2029-01-29", "2029-02-28", "2029-03-29",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "moment",
    [
        at(2027, 1, 31, 10),
        at(2027, 2, 28, 9, 59, 59),
        at(2027, 2, 28, 10),
        at(2031, 7, 4),
        at(2020, 1, 1),
    ],
)
def test_the_index_of_a_moment_is_the_interval_that_holds_it(moment):
    grid = PeriodGrid(at(2027, 1, 31, 10), parse_period("P1M"))

    k = grid.index(moment)

    assert grid.at(k) <= moment < grid.at(k + 1)


@pytest.mark.parametrize("text", ["P1M", "P1W", "P30D", "P1Y", "P1DT12H", "P2M15D"])
def test_a_period_is_a_positive_iso_duration_of_a_day_or_more(text):
    assert parse_period(text) == parse_duration(text)


@pytest.mark.parametrize("text", ["", "P0D", "PT12H", "PT23H59M", "-P1M", "1 month", "30 days"])
def test_other_periods_are_refused(text):
    assert parse_period(text) is None


@pytest.mark.django_db
def test_a_template_with_a_period_shorter_than_a_day_is_refused_with_the_reason():
    template = BalanceTemplate(
        name="Hourly", kind=BalanceKind.PERIODIC, currency="MB", period="PT1H"
    )

    with pytest.raises(ValidationError) as raised:
        template.full_clean()

    assert "at least one day" in str(raised.value.message_dict["period"])


@pytest.mark.django_db
def test_a_periodic_template_without_a_period_is_refused_with_the_reason():
    template = BalanceTemplate(name="No period", kind=BalanceKind.PERIODIC, currency="MB")

    with pytest.raises(ValidationError) as raised:
        template.full_clean()

    assert "A periodic template needs a period" in str(raised.value)


# --- Three simulated years --------------------------------------------------------------------


@pytest.mark.django_db
def test_three_years_of_monthly_topups_each_land_in_that_months_interval(clock):
    """From 31 January 2027 to April 2030: through every month end, February 2028's leap day,
    at each boundary, the second before it and mid-period; one month in three the worker's task
    ran ahead, the others the top-up makes the interval it needs."""
    start = at(2027, 1, 31, 10)
    balance = periodic(start=start, end=at(2030, 6, 1))
    grid = PeriodGrid(start, parse_period("P1M"))
    credited = Decimal(0)

    for month in range(39):
        for moment in (grid.at(month), grid.at(month) + 12 * DAY, grid.at(month + 1) - SECOND):
            clock.set(moment)
            if month % 3 == 0 and moment == grid.at(month):
                extend_periodic_intervals.call()
            result = balance_topup(balance=balance, amount=Decimal(month + 1), voucher=f"V-{month}")
            credited += month + 1
            assert (result.entry.interval.start_time, result.entry.interval.end_time) == (
                grid.at(month),
                grid.at(month + 1),
            )

    assert_contiguous(balance, covers_until=clock.now)
    starts = [s for s, _ in spans(balance)]
    assert starts[:39] == [grid.at(k) for k in range(39)]
    assert at(2028, 2, 29, 10) in starts and at(2029, 2, 28, 10) in starts
    assert Balance.objects.get(pk=balance.pk).amount == credited
    assert [i.amount for i in balance.intervals.order_by("start_time")][:39] == [
        3 * (k + 1) for k in range(39)
    ]
    check_ledger()


@pytest.mark.django_db
def test_a_leap_day_start_rolls_monthly_over_three_years(clock):
    start = at(2028, 2, 29, 0)
    balance = periodic(start=start)

    for month in range(37):
        clock.set(PeriodGrid(start, parse_period("P1M")).at(month) + 5 * DAY)
        balance_adjust(
            balance=balance, adjust_type=AdjustType.CREDIT, amount=Decimal(1), reason="grant"
        )

    assert_contiguous(balance, covers_until=clock.now)
    days = [s.date().isoformat() for s, _ in spans(balance)]
    assert days[:2] == ["2028-02-29", "2028-03-29"]
    assert days[12] == "2029-02-28" and days[13] == "2029-03-29" and days[36] == "2031-02-28"
    assert all(i.amount == 1 for i in balance.intervals.filter(start_time__lte=clock.now))
    check_ledger()


@pytest.mark.django_db
def test_the_demo_case_a_balance_left_alone_for_months_is_topped_up_again(clock):
    """Its intervals ran out in February; in June the first top-up fills the months between."""
    balance = periodic(start=at(2026, 11, 17), end=at(2027, 11, 17))
    balance_intervals_ensure(balance_id=balance.pk, until=at(2027, 2, 1))
    assert spans(balance)[-1][1] == at(2027, 2, 17)
    clock.set(at(2027, 6, 20, 8))

    result = balance_topup(balance=balance, amount=Decimal(5), voucher="V-1")

    assert (result.entry.interval.start_time, result.entry.interval.end_time) == (
        at(2027, 6, 17),
        at(2027, 7, 17),
    )
    assert_contiguous(balance, covers_until=clock.now + INTERVALS_AHEAD)
    check_ledger()


# --- Idempotence, failures, validity changes ---------------------------------------------------


@pytest.mark.django_db
def test_ensuring_twice_makes_nothing_the_second_time(clock):
    balance = periodic(start=at(2027, 1, 1))

    first = balance_intervals_ensure(balance_id=balance.pk)
    before = spans(balance)
    second = balance_intervals_ensure(balance_id=balance.pk)

    assert (first, second) == (2, 0)  # January, and February within the week ahead
    assert (
        spans(balance)
        == before
        == [
            (at(2027, 1, 1), at(2027, 2, 1)),
            (at(2027, 2, 1), at(2027, 3, 1)),
        ]
    )


@pytest.mark.django_db
def test_other_kinds_of_balance_get_no_interval(clock):
    balance = BalanceFactory(start_time=at(2027, 1, 1))

    assert balance_intervals_ensure(balance_id=balance.pk) == 0
    assert not BalanceInterval.objects.exists()


@pytest.mark.django_db
def test_a_refused_debit_leaves_no_interval_behind(clock):
    balance = periodic(start=at(2026, 12, 1))
    balance_intervals_ensure(balance_id=balance.pk, until=at(2026, 12, 2))
    balance_topup(balance=balance, amount=Decimal(4), voucher="V-1")  # into January's interval
    clock.set(at(2027, 3, 5))
    before = snapshot()

    with pytest.raises(BadData):
        balance_adjust(
            balance=balance, adjust_type=AdjustType.DEBIT, amount=Decimal(1), reason="usage"
        )

    assert snapshot() == before  # March's interval (and February's) rolled back with the debit


@pytest.mark.django_db
def test_an_expired_periodic_balance_is_still_refused_under_T3(clock):
    balance = periodic(start=at(2026, 10, 1), end=at(2027, 1, 1))
    before = snapshot()

    with pytest.raises(BadData) as raised:
        balance_topup(balance=balance, amount=Decimal(1), voucher="V-1")

    assert raised.value.rule == "T3"
    assert snapshot() == before


@pytest.mark.django_db
def test_S2_moving_the_start_back_covers_the_new_time_in_the_existing_cadence(clock):
    balance = periodic(start=at(2027, 1, 15))
    balance_intervals_ensure(balance_id=balance.pk)
    kept = spans(balance)

    balance_change_start(balance_id=balance.pk, start_time=at(2026, 11, 20))

    assert spans(balance) == [
        (at(2026, 11, 15), at(2026, 12, 15)),
        (at(2026, 12, 15), at(2027, 1, 15)),
        *kept,
    ]
    assert_contiguous(balance, covers_until=clock.now)


@pytest.mark.django_db
def test_S2_a_start_moved_decades_back_makes_no_more_than_a_year_of_intervals(clock):
    """A partner with the adjust right must not make a row per day since the year 1."""
    balance = periodic("P1D", start=at(2027, 1, 20))
    balance_intervals_ensure(balance_id=balance.pk)

    balance_change_start(balance_id=balance.pk, start_time=at(1, 1, 1))

    first = spans(balance)[0][0]
    assert clock.now - INTERVALS_BEHIND - DAY < first <= clock.now - INTERVALS_BEHIND
    assert len(spans(balance)) == (at(2027, 2, 8) - first).days
    assert_contiguous_from(balance, first, covers_until=clock.now)


@pytest.mark.django_db
def test_a_balance_dated_long_ago_gets_its_last_year_and_the_task_leaves_it_be(clock):
    balance = periodic("P1W", start=at(2001, 1, 1))

    made = extend_periodic_intervals.call()
    again = extend_periodic_intervals.call()

    assert (made, again) == (len(spans(balance)), 0)
    assert made <= 54
    assert_contiguous_from(balance, spans(balance)[0][0], covers_until=clock.now + INTERVALS_AHEAD)
    assert spans(balance)[0][0].weekday() == at(2001, 1, 1).weekday()  # on the grid of its start


@pytest.mark.django_db
def test_E3_extending_the_end_covers_the_new_time_and_top_ups_go_on(clock):
    balance = periodic(start=at(2026, 12, 31), end=at(2027, 2, 3))
    balance_intervals_ensure(balance_id=balance.pk)
    assert spans(balance)[-1] == (at(2027, 1, 31), at(2027, 2, 28))

    balance_change_end(balance_id=balance.pk, end_time=at(2027, 12, 31))

    clock.set(at(2027, 8, 31, 12))
    result = balance_topup(balance=balance, amount=Decimal(1), voucher="V-1")
    assert result.entry.interval.start_time == at(2027, 8, 31)
    assert_contiguous(balance, covers_until=clock.now)
    check_ledger()


@pytest.mark.django_db
def test_E3_the_extension_is_covered_at_once_when_its_start_is_within_the_week(clock):
    clock.set(at(2027, 2, 25))
    balance = periodic(start=at(2026, 12, 31), end=at(2027, 2, 28))
    balance_intervals_ensure(balance_id=balance.pk)
    assert spans(balance)[-1] == (at(2027, 1, 31), at(2027, 2, 28))

    balance_change_end(balance_id=balance.pk, end_time=at(2027, 6, 30))

    assert spans(balance)[-1] == (at(2027, 2, 28), at(2027, 3, 31))


# --- Readings ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_rest_wallet_query_shows_the_current_interval_after_the_last_one_ran_out(clock, client):
    user = make_client_user(username="partner-reads")
    balance = periodic(start=at(2026, 11, 17))
    balance_intervals_ensure(balance_id=balance.pk, until=at(2026, 11, 18))
    clock.set(at(2027, 3, 1))
    ref = f"ExternalId+{balance.wallet.subscription.external_id}"

    reply = client.get(
        f"/rsgateway/data/json/subscription/{ref}/wallet/{balance.resource_id}",
        **basic_auth(user.username),
    ).json()

    info = reply["BalanceArray"][0]
    assert (info["IntervalStartTime"], info["IntervalEndTime"]) == (
        "2027-02-17T00:00:00Z",
        "2027-03-17T00:00:00Z",
    )
    assert_contiguous(balance, covers_until=clock.now)


@pytest.mark.django_db
def test_the_panel_reading_of_a_subscribers_balances_makes_the_current_interval(clock):
    subscriber = SubscriberFactory()
    balance = periodic(
        start=at(2027, 1, 1), wallet=WalletFactory(subscription__subscriber=subscriber)
    )

    assert list(subscriber_balances(subscriber)) == [balance]

    assert balance.intervals.live(clock.now).exists()


# --- The worker's recurring task --------------------------------------------------------------


def run_worker():
    call_command("db_worker", "--batch", "--no-startup-delay", stdout=StringIO(), stderr=StringIO())


@pytest.mark.django_db(transaction=True)
def test_the_recurring_task_starts_once_runs_on_the_worker_and_queues_its_next_run():
    from django_tasks_db.models import DBTaskResult

    now = timezone.now()
    balance = periodic("P1W", start=now - 20 * DAY)

    assert intervals_schedule() is True
    assert intervals_schedule() is False  # a second deploy, or `make run` again
    run_worker()

    assert_contiguous(balance, covers_until=now + INTERVALS_AHEAD)
    runs = DBTaskResult.objects.filter(task_path="wallets.tasks.extend_periodic_intervals")
    assert runs.filter(status="SUCCESSFUL").get().return_value == len(spans(balance))
    waiting = runs.get(status="READY")
    assert now + EVERY - dt.timedelta(minutes=1) < waiting.run_after <= timezone.now() + EVERY
    assert intervals_schedule() is False


@pytest.mark.django_db
def test_the_command_for_cron_makes_the_intervals_now(clock):
    balance = periodic("P1D", start=at(2027, 1, 20))
    out = StringIO()

    call_command("extend_intervals", stdout=out)

    assert_contiguous(balance, covers_until=clock.now + INTERVALS_AHEAD)
    assert len(spans(balance)) == 11 + 7 + 1
    assert "19 periodic interval(s) made" in out.getvalue()


# --- Parallel requests (PostgreSQL) ------------------------------------------------------------

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL: set DATABASE_URL=postgres://…"
)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_topups_at_a_period_boundary_make_one_interval(monkeypatch):
    boundary = at(2027, 3, 31, 10)
    monkeypatch.setattr(timezone, "now", lambda: boundary)
    balance = periodic(start=at(2027, 1, 31, 10))
    balance_intervals_ensure(balance_id=balance.pk, until=at(2027, 3, 1))
    assert spans(balance)[-1][1] == boundary
    workers = 8
    barrier = threading.Barrier(workers)
    errors = []

    def top_up(n):
        try:
            barrier.wait()
            balance_topup(balance=balance, amount=Decimal(1), voucher=f"V-{n}")
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=top_up, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert BalanceInterval.objects.filter(balance=balance, start_time=boundary).count() == 1
    assert_contiguous(balance, covers_until=boundary + INTERVALS_AHEAD)
    new = balance.intervals.get(start_time=boundary)
    assert new.amount == workers
    assert set(LedgerEntry.objects.values_list("interval", flat=True)) == {new.pk}
    check_ledger()


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_readings_and_the_task_make_each_interval_once(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: at(2027, 6, 1))
    balances = [periodic("P1D", start=at(2027, 1, 1)) for _ in range(3)]
    workers = 6
    barrier = threading.Barrier(workers)
    made = []

    def ensure(n):
        try:
            barrier.wait()
            if n % 2:
                made.append(extend_periodic_intervals.call())
            else:
                made.append(sum(balance_intervals_ensure(balance_id=b.pk) for b in balances))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ensure, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    per_balance = (at(2027, 6, 8) - at(2027, 1, 1)).days + 1
    assert sum(made) == 3 * per_balance == BalanceInterval.objects.count()
    for balance in balances:
        assert_contiguous(balance, covers_until=at(2027, 6, 8))
