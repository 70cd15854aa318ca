"""Balance rules of docs/balance-rules.md, one service test per rule id (T1–T7, S1–S7, E1–E9)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.wallets.conftest import DAY, make_balance, snapshot
from wallets.durations import parse_duration
from wallets.exceptions import BadData, NotSupported, Result
from wallets.models import Balance, BalanceEvent, BalanceEventKind, BalanceKind, LedgerEntry
from wallets.services.topup import balance_topup
from wallets.services.validity import balance_change_end, balance_change_start

pytestmark = pytest.mark.django_db

SIMPLE, PERIODIC, VIRTUAL, METER = (
    BalanceKind.SIMPLE,
    BalanceKind.PERIODIC,
    BalanceKind.VIRTUAL,
    BalanceKind.METER,
)


def days(n: float) -> dt.datetime:
    return timezone.now() + n * DAY


def fresh(balance: Balance) -> Balance:
    return Balance.objects.get(pk=balance.pk)


# --- Top-up: T1–T7 ------------------------------------------------------------------------------

TOPUP_REFUSALS = [
    ("T1", dict(), dict(amount=Decimal("0")), BadData),
    ("T1", dict(), dict(amount=Decimal("-5.00")), BadData),
    ("T2", dict(), dict(voucher=""), BadData),
    ("T3", dict(kind=PERIODIC, start_days=-35, end_days=-5), dict(), BadData),
    ("T5", dict(kind=METER, precision=0), dict(amount=Decimal("5")), NotSupported),
    ("T6", dict(precision=2), dict(amount=Decimal("1.001")), BadData),
    ("T6", dict(precision=0, currency="MB"), dict(amount=Decimal("1.5")), BadData),
    ("T7", dict(), dict(start_time=days(-20)), NotSupported),
]


@pytest.mark.parametrize(
    ("rule", "balance_kwargs", "topup_kwargs", "error"),
    TOPUP_REFUSALS,
    ids=[f"{case[0]}-{n}" for n, case in enumerate(TOPUP_REFUSALS)],
)
def test_topup_refusals_carry_their_result_and_change_nothing(
    rule, balance_kwargs, topup_kwargs, error
):
    balance = make_balance(**balance_kwargs)
    before = snapshot()

    with pytest.raises(error) as raised:
        balance_topup(
            **{"balance": balance, "amount": Decimal("10"), "voucher": "V-1", **topup_kwargs}
        )

    assert raised.value.result == error.result
    assert raised.value.rule == rule
    assert snapshot() == before


def test_T1_a_topup_is_a_credit_with_one_ledger_entry_and_an_audit_record():
    balance = make_balance(amount="5.00")

    result = balance_topup(balance=balance, amount=Decimal("25.00"), voucher="V-1")

    assert fresh(balance).amount == Decimal("30.00")
    assert result.entry.amount == Decimal("25.00") and result.entry.voucher == "V-1"
    event = BalanceEvent.objects.get(kind=BalanceEventKind.TOPUP)
    assert event.ledger_entry == result.entry
    assert event.changes == {"amount": ["5.000000", "30.000000"]}


def test_T3_a_periodic_topup_credits_only_the_current_interval():
    balance = make_balance(kind=PERIODIC, precision=0, currency="MB")
    intervals = list(balance.intervals.order_by("start_time"))

    balance_topup(balance=balance, amount=Decimal("512"), voucher="V-1")

    amounts = [i.amount for i in balance.intervals.order_by("start_time")]
    assert amounts == [0, 512, 0]
    assert LedgerEntry.objects.get().interval == intervals[1]
    assert fresh(balance).amount == 512


def test_T3_a_periodic_balance_missing_its_current_interval_gets_it_from_its_period():
    balance = make_balance(kind=PERIODIC, precision=0, currency="MB")
    now = timezone.now()
    current = balance.intervals.live(now).get()
    span = (current.start_time, current.end_time)
    current.delete()
    others = list(balance.intervals.values_list("pk", "start_time", "end_time", "amount"))

    result = balance_topup(balance=balance, amount=Decimal("7"), voucher="V-1")

    made = balance.intervals.exclude(pk__in=[pk for pk, *_ in others]).get()
    assert (made.start_time, made.end_time, made.amount) == (*span, 7)
    assert result.entry.interval == made
    assert (
        list(
            balance.intervals.exclude(pk=made.pk).values_list(
                "pk", "start_time", "end_time", "amount"
            )
        )
        == others
    )


def test_T4_a_topup_of_a_virtual_balance_does_not_roll_up():
    gl = make_balance(group=True, amount="100.00")
    virtual = make_balance(kind=VIRTUAL, parent=gl)

    balance_topup(balance=virtual, amount=Decimal("20.00"), voucher="V-1")

    assert fresh(virtual).amount == Decimal("20.00")
    assert fresh(gl).amount == Decimal("100.00")
    assert not LedgerEntry.objects.filter(balance=gl).exclude(kind="opening").exists()


def test_T6_precision_zero_accepts_trailing_zeros():
    balance = make_balance(precision=0, currency="MB")

    balance_topup(balance=balance, amount=Decimal("5.000"), voucher="V-1")

    assert fresh(balance).amount == 5


def test_a_balance_that_is_not_live_cannot_be_topped_up():
    balance = make_balance(start_days=-10, end_days=-1)
    before = snapshot()

    with pytest.raises(BadData) as raised:
        balance_topup(balance=balance, amount=Decimal("1"), voucher="V-1")

    assert raised.value.result == Result.BAD_DATA
    assert snapshot() == before


def test_T7_a_topup_may_change_the_end_time_in_the_same_transaction():
    balance = make_balance(end_days=5)
    new_end = days(40)

    balance_topup(balance=balance, amount=Decimal("1"), voucher="V-1", end_time=new_end)

    assert fresh(balance).end_time == new_end
    assert BalanceEvent.objects.filter(kind=BalanceEventKind.END_TIME).count() == 1


def test_T7_an_end_time_that_breaks_a_rule_undoes_the_credit_too():
    balance = make_balance(end_days=5, end_adjust=False)
    before = snapshot()

    with pytest.raises(BadData) as raised:
        balance_topup(balance=balance, amount=Decimal("1"), voucher="V-1", end_time=days(40))

    assert raised.value.rule == "E1"
    assert snapshot() == before


# --- Start time: S1–S7 --------------------------------------------------------------------------

START_REFUSALS = [
    ("S1", dict(kind=VIRTUAL), lambda b: b.start_time - DAY),
    ("S1", dict(kind=METER, precision=0), lambda b: b.start_time - DAY),
    ("S3", dict(), lambda b: b.start_time + DAY),
    ("S3", dict(), lambda b: b.start_time),
    ("S4", dict(), lambda b: parse_duration("-P1D")),
    ("S5", dict(kind=PERIODIC, start_days=-40, end_days=-1), lambda b: b.start_time - DAY),
    ("S7", dict(private=True), lambda b: b.start_time - DAY),
]


@pytest.mark.parametrize(
    ("rule", "balance_kwargs", "new_start"),
    START_REFUSALS,
    ids=[f"{case[0]}-{n}" for n, case in enumerate(START_REFUSALS)],
)
def test_start_time_refusals_carry_their_rule_and_change_nothing(rule, balance_kwargs, new_start):
    balance = make_balance(**balance_kwargs)
    before = snapshot()

    with pytest.raises(BadData) as raised:
        balance_change_start(balance_id=balance.pk, start_time=new_start(balance))

    assert (raised.value.rule, raised.value.result) == (rule, Result.BAD_DATA)
    assert snapshot() == before


def test_S1_S3_a_simple_balance_start_moves_earlier_and_is_recorded():
    balance = make_balance()
    new_start = balance.start_time - 3 * DAY

    balance_change_start(balance_id=balance.pk, start_time=new_start, reason="backdated")

    assert fresh(balance).start_time == new_start
    event = BalanceEvent.objects.get(balance=balance)
    assert event.kind == BalanceEventKind.START_TIME and event.reason == "backdated"
    assert event.changes["start_time"][1] == new_start.isoformat()


def test_S2_a_periodic_balance_moves_as_a_whole_keeps_its_intervals_and_covers_the_new_time():
    balance = make_balance(kind=PERIODIC, precision=0, currency="MB")
    intervals = list(balance.intervals.values_list("start_time", "end_time", "amount"))
    new_start = balance.start_time - 7 * DAY

    balance_change_start(balance_id=balance.pk, start_time=new_start)

    assert fresh(balance).start_time == new_start
    added = list(balance.intervals.values_list("start_time", "end_time", "amount"))
    # One whole period of the template (P30D) before the first interval, which it meets.
    assert added == [(intervals[0][0] - 30 * DAY, intervals[0][0], 0), *intervals]


def test_S5_an_expired_simple_balance_may_change_its_start():
    balance = make_balance(start_days=-40, end_days=-1)

    balance_change_start(balance_id=balance.pk, start_time=balance.start_time - DAY)

    assert fresh(balance).start_time == balance.start_time - DAY


def test_S6_moving_an_aggregated_start_earlier_moves_the_later_balances_above():
    top = make_balance(group=True, start_days=-3)
    middle = make_balance(group=True, start_days=-30, parent=top)
    member = make_balance(start_days=-10, parent=middle)
    new_start = days(-20)

    changed = balance_change_start(balance_id=member.pk, start_time=new_start)

    assert fresh(member).start_time == new_start
    assert fresh(middle).start_time == middle.start_time  # already earlier: untouched
    assert fresh(top).start_time == new_start  # later: moved
    assert {b.pk for b in changed} == {member.pk, top.pk}
    assert BalanceEvent.objects.get(balance=top).changes["propagated_from"] == member.pk


# --- End time: E1–E9 ----------------------------------------------------------------------------

END_REFUSALS = [
    ("E1", dict(end_adjust=False), lambda b: days(30), False),
    ("E2", dict(kind=VIRTUAL), lambda b: days(30), False),
    ("E2", dict(kind=METER, precision=0), lambda b: days(30), False),
    ("E4", dict(start_days=-10), lambda b: b.start_time, False),
    ("E4", dict(start_days=-10), lambda b: days(-1), False),
    ("E5", dict(start_days=-10), lambda b: days(-20), True),  # in the past, before the start
    ("E7", dict(end_days=None), lambda b: parse_duration("P4W"), False),
    ("E7", dict(end_days=5), lambda b: parse_duration("-P10D"), False),
    ("E7", dict(end_days=5), lambda b: parse_duration("-P10D"), True),
    ("E9", dict(private=True, end_days=5), lambda b: days(30), False),
]


@pytest.mark.parametrize(
    ("rule", "balance_kwargs", "new_end", "allow_past"),
    END_REFUSALS,
    ids=[f"{case[0]}-{n}" for n, case in enumerate(END_REFUSALS)],
)
def test_end_time_refusals_carry_their_rule_and_change_nothing(
    settings, rule, balance_kwargs, new_end, allow_past
):
    settings.ALLOW_END_TIME_IN_PAST = allow_past
    balance = make_balance(**balance_kwargs)
    before = snapshot()

    with pytest.raises(BadData) as raised:
        balance_change_end(balance_id=balance.pk, end_time=new_end(balance))

    expected_rule = "E4" if rule == "E5" else rule  # E5 still requires end > start (E4)
    assert (raised.value.rule, raised.value.result) == (expected_rule, Result.BAD_DATA)
    assert snapshot() == before


def test_E3_a_periodic_balance_end_changes_as_a_whole_and_keeps_its_intervals():
    balance = make_balance(kind=PERIODIC, precision=0, currency="MB")
    intervals = list(balance.intervals.values_list("start_time", "end_time", "amount"))

    new_end = days(90)

    balance_change_end(balance_id=balance.pk, end_time=new_end)

    assert fresh(balance).end_time == new_end
    # The new time is weeks away: its intervals come as it does (INTERVALS_AHEAD).
    assert list(balance.intervals.values_list("start_time", "end_time", "amount")) == intervals


def test_E4_the_end_may_move_earlier_as_long_as_it_stays_after_now():
    balance = make_balance(end_days=30)
    new_end = days(2)

    balance_change_end(balance_id=balance.pk, end_time=new_end)

    assert fresh(balance).end_time == new_end


def test_E5_with_the_setting_on_a_simple_balance_may_end_in_the_past(settings):
    settings.ALLOW_END_TIME_IN_PAST = True
    balance = make_balance(start_days=-10, end_days=30)
    new_end = days(-2)

    balance_change_end(balance_id=balance.pk, end_time=new_end)

    assert fresh(balance).end_time == new_end
    assert not fresh(balance).is_live()


def test_E5_with_the_setting_off_the_past_is_refused(settings):
    settings.ALLOW_END_TIME_IN_PAST = False
    balance = make_balance(start_days=-10, end_days=30)
    before = snapshot()

    with pytest.raises(BadData) as raised:
        balance_change_end(balance_id=balance.pk, end_time=days(-2))

    assert raised.value.rule == "E4"
    assert snapshot() == before


@pytest.mark.parametrize("where", ["member", "top"])
def test_E6_an_aggregated_balance_never_ends_in_the_past_even_with_the_setting(settings, where):
    settings.ALLOW_END_TIME_IN_PAST = True
    top = make_balance(group=True, start_days=-10, end_days=30)
    member = make_balance(start_days=-10, end_days=30, parent=top)
    target = member if where == "member" else top
    before = snapshot()

    with pytest.raises(BadData) as raised:
        balance_change_end(balance_id=target.pk, end_time=days(-2))

    assert raised.value.rule == "E6"
    assert snapshot() == before


def test_E6_an_aggregated_balance_may_be_extended_into_the_future():
    top = make_balance(group=True, end_days=60)
    member = make_balance(end_days=30, parent=top)

    new_end = days(45)

    balance_change_end(balance_id=member.pk, end_time=new_end)

    assert fresh(member).end_time == new_end


def test_E7_a_relative_end_counts_from_the_current_end():
    balance = make_balance(end_days=10)

    balance_change_end(balance_id=balance.pk, end_time=parse_duration("P4W"))

    assert fresh(balance).end_time == balance.end_time + dt.timedelta(weeks=4)
    assert BalanceEvent.objects.get().changes["relative"] == "P4W"


def test_E7_months_are_calendar_months():
    balance = make_balance(start_days=-400, end_days=None)
    Balance.objects.filter(pk=balance.pk).update(
        end_time=dt.datetime(2099, 1, 31, 12, 0, tzinfo=dt.UTC)
    )

    balance_change_end(balance_id=balance.pk, end_time=parse_duration("P1M"))

    assert fresh(balance).end_time == dt.datetime(2099, 2, 28, 12, 0, tzinfo=dt.UTC)


def test_E8_extending_an_aggregated_end_extends_the_earlier_balances_above():
    top = make_balance(group=True, end_days=100)
    middle = make_balance(group=True, end_days=20, parent=top)
    unbounded = make_balance(group=True, end_days=None)
    member = make_balance(end_days=10, parent=middle)
    other = make_balance(end_days=10, parent=unbounded)
    new_end = days(50)

    changed = balance_change_end(balance_id=member.pk, end_time=new_end)
    balance_change_end(balance_id=other.pk, end_time=new_end)

    assert fresh(member).end_time == new_end
    assert fresh(middle).end_time == new_end  # was earlier: extended
    assert fresh(top).end_time == top.end_time  # already later: untouched
    assert fresh(unbounded).end_time is None  # no end: nothing to extend
    assert {b.pk for b in changed} == {member.pk, middle.pk}


def test_E8_shortening_an_end_changes_nothing_above():
    top = make_balance(group=True, end_days=10)
    member = make_balance(end_days=30, parent=top)
    new_end = days(20)

    changed = balance_change_end(balance_id=member.pk, end_time=new_end)

    assert fresh(member).end_time == new_end
    assert fresh(top).end_time == top.end_time
    assert [b.pk for b in changed] == [member.pk]


def test_E9_a_private_balance_end_changes_through_a_topup():
    balance = make_balance(private=True, end_days=5)
    new_end = days(60)

    balance_topup(balance=balance, amount=Decimal("1.00"), voucher="V-1", end_time=new_end)

    assert fresh(balance).end_time == new_end
