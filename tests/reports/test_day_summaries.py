"""Issue 16: the Redemptions and Balances reports read daily summaries of closed days; their
figures must be those of the live computation, whatever the summary holds.

A history of 18 days is built through the product's services under a controlled clock
(time-machine) in America/Santiago, whose 4 April 2026 lasts 25 hours (its last hour is played
twice: the clocks go back at midnight): redemptions through the panel and the REST API on every
day (some at midnight exactly, some in the repeated hour, one card without a ledger entry), of
3 resellers' cards and cards of no reseller, USD and EUR, several series; top-ups, adjustments
(credit and debit), opening balances, reversals of top-ups and of card redemptions (cards
redeemed on days the summary already held, reversed after it was built), a group wallet and a
subscriber of no reseller. The worker summarizes every third night. Then every granularity,
breakdown and filter (the reseller-scoped view included) of both reports, over periods that start,
end or straddle the summary's last day, is compared with the old live selectors kept below as the
oracle, and the pages (CSV) with the summary against the same pages without it.
"""

import datetime as dt
import random
import zoneinfo
from collections import defaultdict
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.db.models import Count, DateTimeField, F, Q, Sum
from django.db.models.functions import Trunc
from django.urls import reverse
from django.utils import timezone

from cards.models import TopUpCard
from cards.services.generation import card_batch_generate
from cards.services.redemption import card_redeem
from cards.services.reversal import card_reverse, entry_reverse
from reports.models import DaySummary, LedgerFlowDay, RedemptionDay
from reports.selectors.balances import FLOW_COLUMNS, balance_flows
from reports.selectors.common import Granularity, Period, day_summary_until, start_of_day
from reports.selectors.redemptions import REDEMPTION_BREAKDOWNS, redemptions
from reports.services.day_summaries import day_summaries_extend
from tests.factories import (
    BalanceFactory,
    BalanceTemplateFactory,
    GroupWalletFactory,
    ResellerFactory,
    StaffResellerFactory,
    SubscriberFactory,
    TopUpCardFactory,
    UserFactory,
    WalletFactory,
)
from tests.parallel import run_together
from wallets.models import Channel, LedgerEntry, LedgerKind
from wallets.services.adjust import balance_adjust
from wallets.services.ledger import balance_apply
from wallets.services.topup import balance_topup

pytestmark = pytest.mark.django_db

TZ = "America/Santiago"
FIRST_DAY = dt.date(2026, 3, 27)
DAYS = 18
LONG_DAY = dt.date(2026, 4, 4)  # 25 hours: 23:00–24:00 is played twice
D = Decimal
UTC = dt.UTC


def _local(day: dt.date, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime.combine(
        day, dt.time(hour, minute, second), tzinfo=zoneinfo.ZoneInfo(TZ)
    ).astimezone(UTC)


# The oracle: the selectors as they were before the summaries (every row read live).
def _trunc(field, granularity):
    return Trunc(
        field, granularity, output_field=DateTimeField(), tzinfo=timezone.get_current_timezone()
    )


def _day(value) -> dt.date:
    return timezone.localtime(value).date()


def _no_channel(row, key):
    return row[key] or "" if key == "channel" else row[key]


def oracle_redemptions(*, period, breakdown, reseller_id=None, currency="", series="", channel=""):
    cards = TopUpCard.objects.filter(activated_at__gte=period.start, activated_at__lt=period.end)
    if reseller_id is not None:
        cards = cards.filter(reseller_id=reseller_id)
    if currency:
        cards = cards.filter(currency=currency)
    if series:
        cards = cards.filter(series=series)
    if channel:
        cards = cards.filter(ledger_entry__channel=channel)
    extra = REDEMPTION_BREAKDOWNS[breakdown]
    cards = cards.order_by().annotate(period=_trunc("activated_at", period.granularity))
    if "channel" in extra:
        cards = cards.annotate(channel=F("ledger_entry__channel"))
    rows = cards.values("period", "currency", *extra).annotate(
        count=Count("id"),
        value=Sum("amount"),
        reversed_value=Sum("amount", filter=Q(reversed_at__isnull=False), default=D(0)),
    )
    return {
        (_day(r["period"]), r["currency"], *(_no_channel(r, k) for k in extra)): (
            r["count"],
            r["value"].quantize(D("0.01")),
            r["reversed_value"].quantize(D("0.01")),
        )
        for r in rows
    }


def oracle_flows(*, period, reseller_id=None, currency="", template_id=None):
    entries = LedgerEntry.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
    if reseller_id is not None:
        entries = entries.filter(balance__wallet__subscription__subscriber__reseller_id=reseller_id)
    if currency:
        entries = entries.filter(balance__template__currency=currency)
    if template_id is not None:
        entries = entries.filter(balance__template_id=template_id)
    sums = {name: Sum("amount", filter=q, default=D(0)) for name, q in FLOW_COLUMNS.items()}
    rows = (
        entries.order_by()
        .annotate(period=_trunc("created_at", period.granularity))
        .values("period", "balance__template__currency")
        .annotate(entries=Count("id"), net=Sum("amount"), **sums)
    )
    return {
        (_day(r["period"]), r["balance__template__currency"]): (
            r["entries"],
            r["net"],
            *(r[name] for name in FLOW_COLUMNS),
        )
        for r in rows
    }


def product_redemptions(**kwargs):
    extra = REDEMPTION_BREAKDOWNS[kwargs["breakdown"]]
    return {
        (
            r["period"],
            r["currency"],
            *("" if r[k] == "(unknown)" else r[k] for k in extra),
        ): (r["count"], r["value"], r["reversed_value"])
        for r in redemptions(**kwargs)
    }


def product_flows(**kwargs):
    return {
        (r["period"], r["currency"]): (
            r["entries"],
            r["net"],
            *(r[name] for name in FLOW_COLUMNS),
        )
        for r in balance_flows(**kwargs)
    }


class History:
    def __init__(self, traveller):
        self.traveller = traveller
        self.rng = random.Random(16)
        self.resellers = [ResellerFactory(name=f"Reseller {n}") for n in (1, 2, 3)]
        self.templates = {
            unit: BalanceTemplateFactory(name=f"Main {unit}", currency=unit, precision=precision)
            for unit, precision in (("USD", 2), ("EUR", 2), ("MB", 0))
        }
        self.owners = {}  # reseller id (None: no reseller) -> subscriber, {unit: balance}
        for reseller in [*self.resellers, None]:
            subscriber = SubscriberFactory(reseller=reseller)
            wallet = WalletFactory(subscription__subscriber=subscriber)
            balances = {
                unit: BalanceFactory(wallet=wallet, template=template, is_main=unit == "USD")
                for unit, template in self.templates.items()
            }
            self.owners[reseller.pk if reseller else None] = (subscriber, balances)
        self.group_balance = BalanceFactory(
            wallet=GroupWalletFactory(), template=self.templates["USD"]
        )
        self.pins: dict[int, str] = {}
        series = 200
        for reseller in [*self.resellers, None]:
            for currency, amount in (("USD", "10"), ("EUR", "25"), ("USD", "7.50")):
                series += 1
                result = card_batch_generate(
                    series=str(series),
                    quantity=14,
                    amount=amount,
                    currency=currency,
                    pin_length=12,
                    reseller=reseller,
                    expires_at=timezone.now() + dt.timedelta(days=200),
                )
                ids = TopUpCard.objects.filter(series=str(series)).order_by("number")
                for pk, pin in zip(ids.values_list("pk", flat=True), result.pins, strict=True):
                    self.pins[pk] = pin

    def at(self, instant: dt.datetime) -> None:
        self.traveller.move_to(instant)

    def redeem(self, n: int = 1) -> None:
        open_cards = TopUpCard.objects.filter(activated_at__isnull=True)
        for pk in self.rng.sample(sorted(open_cards.values_list("pk", flat=True)), n):
            card = TopUpCard.objects.get(pk=pk)
            subscriber, balances = self.owners[card.reseller_id]
            channel = self.rng.choice([Channel.PANEL, Channel.REST])
            card_redeem(
                pin=self.pins[pk],
                balance=balances[card.currency],
                subscriber=subscriber,
                channel=channel,
            )

    def reverse_card(self, redeemed_before: dt.datetime) -> None:
        redeemed = TopUpCard.objects.filter(
            activated_at__lt=redeemed_before, reversed_at__isnull=True
        )
        ids = sorted(redeemed.values_list("pk", flat=True))
        if ids:
            card_reverse(card_id=self.rng.choice(ids), reason="test")

    def ledger(self) -> None:
        reseller_id = self.rng.choice([*self.owners])
        _, balances = self.owners[reseller_id]
        unit = self.rng.choice(["USD", "EUR", "MB"])
        amount = (
            D(self.rng.randint(1, 90)) if unit == "MB" else D(self.rng.randint(100, 9999)) / 100
        )
        balance_topup(balance=balances[unit], amount=amount, voucher="V-1", channel=Channel.REST)
        credit, debit = D(self.rng.randint(1, 50)), D(self.rng.randint(1, 3))
        balance_adjust(balance=balances[unit], adjust_type=1, amount=credit, reason="bonus")
        balance_adjust(balance=balances[unit], adjust_type=2, amount=debit, reason="usage")
        balance_topup(balance=self.group_balance, amount=D("3.25"), voucher="V-1")


def build(traveller) -> History:
    h = History(traveller)
    for index in range(DAYS):
        day = FIRST_DAY + dt.timedelta(days=index)
        if index % 3 == 2:
            # The worker's run of the night: the days before yesterday's close.
            h.at(_local(day, 2))
            day_summaries_extend()
        if index % 4 == 0:
            h.at(_local(day))  # midnight exactly: this day's, not the day before's
            h.redeem()
        h.at(_local(day, 9, 30))
        h.redeem(h.rng.randint(1, 3))
        h.at(_local(day, 11))
        h.ledger()
        if index % 3 == 0 or index == DAYS - 1:
            h.at(_local(day, 12))
            # A card redeemed days ago, on a day the summary may already hold.
            h.reverse_card(redeemed_before=_local(day) - dt.timedelta(days=2))
        if index % 4 == 1:
            h.at(_local(day, 13))
            topup = LedgerEntry.objects.filter(kind=LedgerKind.TOPUP, reversed_by__isnull=True)
            entry_reverse(entry_id=topup.order_by("pk").first().pk, reason="refund")
        if index % 5 == 1:
            h.at(_local(day, 23, 59, 59))
            h.redeem()
        if index == 3:
            h.at(_local(day, 8))
            _, balances = h.owners[h.resellers[1].pk]
            balance_apply(
                balance_id=balances["EUR"].pk,
                amount=D("40"),
                kind=LedgerKind.OPENING,
                channel=Channel.ADMIN,
                reason="Opening balance",
            )
            # Redeemed with no ledger entry (as cards imported already redeemed): no channel.
            subscriber, _ = h.owners[None]
            TopUpCardFactory(
                series="299",
                amount=D("3.00"),
                reseller=None,
                activated_at=timezone.now(),
                activated_by=subscriber,
            )
        if day == LONG_DAY:
            # The repeated hour: 23:30 before the clocks go back (02:30 UTC) and after (03:30
            # UTC) both belong to 4 April; 04:00 UTC is the midnight that starts 5 April.
            for instant in ("02:30", "03:30", "03:59:59", "04:00"):
                when = dt.datetime.fromisoformat(f"2026-04-05T{instant}+00:00")
                h.at(when)
                h.redeem()
                h.ledger()
    h.at(_local(FIRST_DAY + dt.timedelta(days=DAYS), 12))
    # After the last run: cards of summarized days reversed, entries on a day it does not hold.
    h.reverse_card(redeemed_before=start_of_day(day_summary_until("redemptions")))
    h.reverse_card(redeemed_before=start_of_day(day_summary_until("redemptions")))
    h.ledger()
    h.redeem(2)
    return h


def _periods(until: dt.date) -> list[tuple[dt.date, dt.date]]:
    last = FIRST_DAY + dt.timedelta(days=DAYS)
    return [
        (FIRST_DAY - dt.timedelta(days=3), last),  # the whole history
        (until - dt.timedelta(days=1), until - dt.timedelta(days=1)),  # the summary's last day
        (until, until),  # the first day it does not hold
        (until - dt.timedelta(days=2), until + dt.timedelta(days=1)),  # across its end
        (FIRST_DAY + dt.timedelta(days=4), until - dt.timedelta(days=1)),  # inside it
        (LONG_DAY, LONG_DAY),
        (LONG_DAY + dt.timedelta(days=1), LONG_DAY + dt.timedelta(days=1)),
        (dt.date(2026, 4, 1), dt.date(2026, 4, 1)),  # a month's and a week's middle
    ]


@pytest.fixture
def santiago(settings):
    settings.TIME_ZONE = TZ
    with time_machine.travel(_local(FIRST_DAY, 6), tick=False) as traveller:
        yield traveller


def test_summary_backed_figures_equal_the_live_computation(santiago):
    h = build(santiago)
    until = day_summary_until("redemptions")
    assert until == day_summary_until("ledger") == FIRST_DAY + dt.timedelta(days=DAYS - 1)
    # The comparisons below reach both sides of the summary's end and what it holds:
    assert RedemptionDay.objects.filter(day=until - dt.timedelta(days=1)).exists()
    assert RedemptionDay.objects.filter(day=LONG_DAY).exists()
    assert LedgerFlowDay.objects.filter(day=until - dt.timedelta(days=1)).exists()
    assert TopUpCard.objects.filter(activated_at__gte=start_of_day(until)).exists()
    reversed_later = TopUpCard.objects.filter(
        activated_at__lt=start_of_day(until), reversed_at__gte=start_of_day(until)
    )
    assert reversed_later.count() == 3
    # a reversal appended by a later run under the day of its redemption
    assert RedemptionDay.objects.filter(cards=0, reversed_value__gt=0).exists()
    assert TopUpCard.objects.filter(ledger_entry__isnull=True, activated_at__isnull=False)

    r1, r2, _ = h.resellers
    series = TopUpCard.objects.filter(reseller=r2).values_list("series", flat=True).first()
    card_scopes = [
        {},
        {"reseller_id": r1.pk},
        {"reseller_id": r2.pk},
        {"currency": "EUR"},
        {"series": series},
        {"channel": Channel.REST},
    ]
    flow_scopes = [
        {},
        {"reseller_id": r1.pk},
        {"currency": "USD"},
        {"template_id": h.templates["MB"].pk},
    ]
    compared = 0
    for date_from, date_to in _periods(until):
        for granularity in (Granularity.DAY, Granularity.WEEK, Granularity.MONTH):
            period = Period(date_from, date_to, granularity)
            for breakdown in REDEMPTION_BREAKDOWNS:
                for scope in card_scopes:
                    arguments = {"period": period, "breakdown": breakdown, **scope}
                    expected = oracle_redemptions(**arguments)
                    assert product_redemptions(**arguments) == expected, arguments
                    compared += bool(expected)
            for scope in flow_scopes:
                expected = oracle_flows(period=period, **scope)
                assert product_flows(period=period, **scope) == expected, (period, scope)
                compared += bool(expected)
    assert compared > 400


def _csv(client, model: str, params: dict) -> bytes:
    response = client.get(reverse(f"admin:reports_{model}_changelist"), {**params, "format": "csv"})
    assert response.status_code == 200
    return response.content


def test_pages_with_the_summary_equal_the_pages_without_it(santiago, client):
    h = build(santiago)
    staff = UserFactory(is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="reports"))
    StaffResellerFactory(user=staff, reseller=h.resellers[0])
    operator = UserFactory(is_staff=True, is_superuser=True)
    pages = [
        ("redemptionreport", {"breakdown": breakdown, "granularity": granularity})
        for breakdown in REDEMPTION_BREAKDOWNS
        for granularity in ("day", "week", "month")
    ] + [
        ("balancereport", {"granularity": granularity}) for granularity in ("day", "week", "month")
    ]
    window = {"date_from": FIRST_DAY - dt.timedelta(days=1), "date_to": timezone.localdate()}
    with_summary = {}
    for user in (operator, staff):
        client.force_login(user)
        for model, params in pages:
            with_summary[user.pk, model, str(params)] = _csv(client, model, {**window, **params})
    DaySummary.objects.all().delete()  # every day computed live
    for user in (operator, staff):
        client.force_login(user)
        for model, params in pages:
            page = _csv(client, model, {**window, **params})
            assert page == with_summary[user.pk, model, str(params)], (user, model, params)


def test_a_subscriber_moved_to_another_reseller_keeps_the_summarized_days_under_the_old_one(
    santiago,
):
    """docs/reports.md, "Balances": an entry counts for the reseller its subscriber had when
    its day was summarized; the days not summarized yet for the one it has now."""
    r1, r2 = ResellerFactory(name="Reseller 1"), ResellerFactory(name="Reseller 2")
    subscriber = SubscriberFactory(reseller=r1)
    balance = BalanceFactory(wallet=WalletFactory(subscription__subscriber=subscriber))
    day = timezone.localdate()
    balance_topup(balance=balance, amount=D("5.00"), voucher="V-1")
    santiago.move_to(_local(day + dt.timedelta(days=2), 2))
    day_summaries_extend()
    balance_topup(balance=balance, amount=D("7.00"), voucher="V-1")
    subscriber.reseller = r2
    subscriber.save(update_fields=["reseller"])
    period = Period(day, day + dt.timedelta(days=2), Granularity.MONTH)

    def net(reseller):
        return [row["net"] for row in balance_flows(period=period, reseller_id=reseller.pk)]

    assert net(r1) == [D("5.00")]
    assert net(r2) == [D("7.00")]


def test_a_summary_of_another_time_zone_is_not_read_and_is_built_again(santiago, settings):
    h = build(santiago)
    assert day_summary_until("redemptions") is not None
    settings.TIME_ZONE = "UTC"
    assert day_summary_until("redemptions") is None  # every day live: right in UTC's days
    period = Period(FIRST_DAY, timezone.localdate(), Granularity.DAY)
    arguments = {"period": period, "breakdown": "reseller", "reseller_id": h.resellers[0].pk}
    assert product_redemptions(**arguments) == oracle_redemptions(**arguments)
    day_summaries_extend()
    assert DaySummary.objects.get(name="redemptions").time_zone == "UTC"
    assert product_redemptions(**arguments) == oracle_redemptions(**arguments)
    assert product_flows(period=period) == oracle_flows(period=period)


def test_a_run_that_fails_half_way_leaves_the_summaries_and_the_figures_as_they_were(
    santiago, monkeypatch
):
    build(santiago)
    summary = {
        name: list(model.objects.order_by("pk").values())
        for name, model in (("r", RedemptionDay), ("l", LedgerFlowDay), ("s", DaySummary))
    }
    period = Period(FIRST_DAY, timezone.localdate(), Granularity.WEEK)
    figures = (
        product_redemptions(period=period, breakdown="channel"),
        product_flows(period=period),
    )
    santiago.move_to(timezone.now() + dt.timedelta(days=3))

    def fail(*args, **kwargs):
        raise RuntimeError("the worker died")

    monkeypatch.setattr(LedgerFlowDay.objects, "bulk_create", fail)
    with pytest.raises(RuntimeError):
        day_summaries_extend()
    monkeypatch.undo()

    assert DaySummary.objects.get(name="ledger").until == summary["s"][1]["until"]
    assert list(LedgerFlowDay.objects.order_by("pk").values()) == summary["l"]
    # The redemptions' run is a transaction of its own: it went through, and reads the same.
    assert DaySummary.objects.get(name="redemptions").until > summary["s"][0]["until"]
    assert product_flows(period=period) == figures[1]
    assert product_redemptions(period=period, breakdown="channel") == figures[0]


def test_extending_twice_writes_each_day_once(santiago):
    build(santiago)
    assert day_summaries_extend() > 0  # the day closed since the last run
    before = (
        list(RedemptionDay.objects.order_by("pk").values()),
        list(LedgerFlowDay.objects.order_by("pk").values()),
    )
    assert day_summaries_extend() == 0  # nothing new has closed
    after = (
        list(RedemptionDay.objects.order_by("pk").values()),
        list(LedgerFlowDay.objects.order_by("pk").values()),
    )
    assert after == before
    totals = defaultdict(int)
    for row in before[1]:
        totals[row["day"]] += row["entries"]
    for day, entries in totals.items():
        day_entries = LedgerEntry.objects.filter(
            created_at__gte=start_of_day(day),
            created_at__lt=start_of_day(day + dt.timedelta(days=1)),
        )
        assert entries == day_entries.count()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_runs_summarize_each_day_once():
    subscriber = SubscriberFactory(reseller=ResellerFactory(name="Reseller 1"))
    balance = BalanceFactory(wallet=WalletFactory(subscription__subscriber=subscriber))
    now = timezone.now()
    for days in range(1, 8):
        TopUpCardFactory(
            reseller=subscriber.reseller,
            amount=D(days),
            activated_at=now - days * dt.timedelta(days=1),
            activated_by=subscriber,
        )
        LedgerEntry.objects.create(
            balance=balance,
            amount=D(days),
            kind=LedgerKind.TOPUP,
            created_at=now - days * dt.timedelta(days=1),
        )
    period = Period(timezone.localdate() - dt.timedelta(days=10), timezone.localdate(), "week")
    live = product_redemptions(period=period, breakdown="reseller"), product_flows(period=period)

    written = run_together([day_summaries_extend] * 4)

    # Each summary is written by one run (not always the same for both); the others, waiting
    # on its lock, found its days done: nothing twice, so the sums are the live ones.
    assert DaySummary.objects.count() == 2
    assert RedemptionDay.objects.count() + LedgerFlowDay.objects.count() == sum(written) > 0
    summarized = (
        product_redemptions(period=period, breakdown="reseller"),
        product_flows(period=period),
    )
    assert summarized == live
