"""Issue 19: every dated figure of the reports against an independent recomputation.

A history of 125 days is built through the product's services under a controlled clock
(time-machine): 3 resellers, USD and EUR, batches generated over time, redemptions, reversals
(one after the card's expiry), blocks and unblocks, expiries moved forward, back, to "now" and
into the past, expired cards given a new expiry, moves between resellers, deletions (of edited,
blocked and expired cards), some at midnight exactly; batches generated dormant, their boxes
delivered in parts days later, dormant cards blocked, moved, deleted and expired before their
delivery. Then, for every day of it, liability,
breakage and the roll-forward are compared with history_oracle.py (plain SQL over the cards and
their audit events), first with the daily summary the worker builds night after night while the
history goes on, then replayed from the events alone.
"""

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from cards import events
from cards.models import CardEvent, TopUpCard
from cards.services.delivery import cards_deliver
from cards.services.generation import card_batch_generate
from cards.services.mass_edit import EXPIRE_NOW, cards_mass_delete, cards_mass_update
from cards.services.redemption import card_redeem
from cards.services.reversal import card_reverse
from cards.sql import selection as sql
from reports.models import CardMovementDay, CardMovementSummary
from reports.selectors.breakage import breakage
from reports.selectors.common import Granularity, Period, end_of_day, start_of_day
from reports.selectors.history import replayed
from reports.selectors.history.view import movements
from reports.selectors.liability import liability
from reports.selectors.rollforward import COLUMNS, rollforward
from reports.services.summary import movement_summary_extend
from tests.factories import (
    BalanceFactory,
    BalanceTemplateFactory,
    ResellerFactory,
    SubscriberFactory,
    UserFactory,
    WalletFactory,
)

from . import history_oracle as oracle

pytestmark = pytest.mark.django_db

UTC = dt.UTC
FIRST_DAY = dt.date(2026, 1, 5)
DAYS = 125
D = Decimal


def _at(day_index: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    day = FIRST_DAY + dt.timedelta(days=day_index)
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=UTC)


class History:
    """The history, built step by step; `cards` maps a card's id to its PIN."""

    def __init__(self, traveller):
        self.traveller = traveller
        self.rng = random.Random(19)
        self.resellers = [ResellerFactory(name=f"Reseller {n}") for n in (1, 2, 3)]
        templates = {
            c: BalanceTemplateFactory(name=f"Main {c}", currency=c) for c in ("USD", "EUR")
        }
        self.balances = {}
        for reseller in self.resellers:
            subscriber = SubscriberFactory(reseller=reseller)
            wallet = WalletFactory(subscription__subscriber=subscriber)
            for currency, template in templates.items():
                self.balances[(reseller.pk, currency)] = (
                    BalanceFactory(wallet=wallet, template=template, is_main=currency == "USD"),
                    subscriber,
                )
        self.pins: dict[int, str] = {}
        self.series = 100
        self.operator = UserFactory(is_staff=True, is_superuser=True)
        self.dormant_batches = []

    def at(self, instant: dt.datetime) -> None:
        self.traveller.move_to(instant)

    def generate(
        self, reseller, currency: str, quantity: int, amount: str, days: int, dormant=False
    ) -> None:
        self.series += 1
        result = card_batch_generate(
            series=str(self.series),
            quantity=quantity,
            amount=amount,
            currency=currency,
            pin_length=12,
            reseller=reseller,
            expires_at=timezone.now() + dt.timedelta(days=days),
            dormant=dormant,
        )
        if dormant:
            self.dormant_batches.append(result.batch)
        numbers = range(result.batch.first_number, result.batch.first_number + quantity)
        by_number = dict(
            TopUpCard.objects.filter(series=result.batch.series).values_list("number", "pk")
        )
        for number, pin in zip(numbers, result.pins, strict=True):
            self.pins[by_number[number]] = pin

    def pick(self, queryset, n: int) -> list[int]:
        ids = sorted(queryset.values_list("pk", flat=True))
        return self.rng.sample(ids, min(n, len(ids)))

    def open_cards(self):
        return TopUpCard.objects.filter(activated_at__isnull=True)

    def dormant_cards(self):
        return self.open_cards().filter(dormant=True)

    def deliver(self, batch, first: int, last: int) -> None:
        """The box of `batch`'s cards `first`…`last` (counted from 1) arrives."""
        if self.dormant_cards().filter(
            series=batch.series,
            number__gte=batch.first_number + first - 1,
            number__lte=batch.first_number + last - 1,
        ):
            cards_deliver(
                series=batch.series,
                first_number=batch.first_number + first - 1,
                last_number=batch.first_number + last - 1,
                reference=f"box {batch.series} {first}-{last}",
                actor=self.operator,
            )

    def redeem(self, n: int) -> None:
        now = timezone.now()
        redeemable = self.open_cards().filter(blocked=False, dormant=False, expires_at__gt=now)
        for pk in self.pick(redeemable, n):
            card = TopUpCard.objects.get(pk=pk)
            # A card of no reseller is anyone's: Reseller 1's subscriber redeems it.
            reseller_id = card.reseller_id or self.resellers[0].pk
            balance, subscriber = self.balances[(reseller_id, card.currency)]
            card_redeem(pin=self.pins[pk], balance=balance, subscriber=subscriber)

    def reverse(self, n: int, **filters) -> None:
        redeemed = TopUpCard.objects.filter(
            activated_at__isnull=False, reversed_at__isnull=True, **filters
        )
        for pk in self.pick(redeemed, n):
            card_reverse(card_id=pk, reason="test")

    def edit(self, n: int, queryset=None, **changes) -> None:
        ids = self.pick(queryset if queryset is not None else self.open_cards(), n)
        cards_mass_update(cards=TopUpCard.objects.filter(pk__in=ids), actor=None, **changes)

    def expire_in_the_past(self, n: int, days: int) -> None:
        """As an earlier Mass Edit could (docs/cards.md): an expiry in the past, its events
        written by cards.events in the same transaction as the update."""
        ids = self.pick(self.open_cards().filter(expires_at__gt=timezone.now()), n)
        selected = TopUpCard.objects.filter(pk__in=ids)
        expires_at = timezone.now() - dt.timedelta(days=days)
        with transaction.atomic():
            sql.insert_card_events(
                selected, event=events.expiry_edited_events(expires_at), actor=None
            )
            selected.update(expires_at=expires_at)

    def delete(self, n: int, queryset=None) -> None:
        ids = self.pick(queryset if queryset is not None else self.open_cards(), n)
        cards_mass_delete(cards=TopUpCard.objects.filter(pk__in=ids), actor=None)


def build(traveller, *, summarize: bool = False) -> History:
    h = History(traveller)
    r1, r2, r3 = h.resellers
    for day in range(DAYS):
        if summarize and day % 17 == 16:
            # The worker's run of the night: the days before yesterday's close are summarized
            # while the cards they count go on changing.
            h.at(_at(day, 2))
            movement_summary_extend()
        h.at(_at(day, 8))
        if day % 30 == 0:
            amounts = (("10", "20"), ("5", "50"), ("25", "7"))
            for reseller, (usd, eur) in zip(h.resellers, amounts, strict=True):
                h.generate(reseller, "USD", 12, usd, days=20 + day % 7 * 5)
                h.generate(reseller, "EUR", 8, eur, days=45)
        if day % 30 == 12:
            h.generate(h.rng.choice(h.resellers), "USD", 10, "15", days=10)
        if day % 30 == 2:
            # A dormant batch: its boxes arrive in parts on later days, one never does (its
            # cards expire dormant), and some of its cards are blocked, moved or deleted first.
            h.generate(h.rng.choice(h.resellers), "USD", 12, "30", days=25, dormant=True)
            h.generate(r2, "EUR", 6, "40", days=8 + day % 4, dormant=True)
        if day % 30 == 4:
            h.at(_at(day, 10))
            h.edit(2, h.dormant_cards(), blocked=True)
            h.edit(1, h.dormant_cards(), reseller=h.rng.choice(h.resellers))
            h.delete(1, h.dormant_cards())
        if day % 30 == 6:
            h.at(_at(day, 10, 30))
            batch = h.dormant_batches[-2]
            h.deliver(batch, 1, 5)  # some of the box blocked: they wake, still blocked
        if day % 30 == 9:
            # At midnight exactly: the delivery belongs to this day.
            h.at(_at(day, 0))
            h.deliver(h.dormant_batches[-2], 6, 9)
            h.at(_at(day, 10, 30))
            h.edit(1, h.dormant_cards(), expires_at=EXPIRE_NOW)
        if day % 30 == 20:
            h.at(_at(day, 10, 30))
            # After the EUR batch's expiry: its cards wake expired, no longer owed.
            h.deliver(h.dormant_batches[-1], 1, 6)
        h.at(_at(day, 9, 30))
        h.redeem(h.rng.randint(0, 3))
        if day % 7 == 3:
            h.at(_at(day, 11))
            h.edit(3, blocked=True)
        if day % 7 == 5:
            h.at(_at(day, 12))
            h.edit(
                2, TopUpCard.objects.filter(blocked=True, activated_at__isnull=True), blocked=False
            )
        if day % 10 == 4:
            h.at(_at(day, 13))
            later = timezone.now() + dt.timedelta(days=h.rng.randint(3, 40))
            h.edit(3, expires_at=later)  # forward or back, some of them expired: reinstated
            h.edit(
                2,
                h.open_cards().filter(expires_at__lte=timezone.now()),
                expires_at=timezone.now() + dt.timedelta(days=15),
            )
        if day % 10 == 6:
            h.at(_at(day, 14))
            h.edit(1, h.open_cards().filter(expires_at__gt=timezone.now()), expires_at=EXPIRE_NOW)
            h.expire_in_the_past(1, days=h.rng.randint(1, 20))
        if day % 9 == 2:
            h.at(_at(day, 15))
            h.edit(3, reseller=h.rng.choice(h.resellers))
            # Moved and changed together, as one Mass Edit does.
            h.edit(1, reseller=r3, blocked=True, expires_at=timezone.now() + dt.timedelta(days=9))
        if day % 9 == 7:
            # At midnight exactly: these belong to this day, not the one before.
            h.at(_at(day, 0))
            h.edit(2, reseller=None)
            h.at(_at(day, 16))
        if day % 12 == 8:
            h.at(_at(day, 17))
            h.delete(2)  # some of them edited before: their events lost the link
            h.delete(1, h.open_cards().filter(blocked=True))
            h.delete(1, h.open_cards().filter(expires_at__lte=timezone.now()))
        if day % 8 == 5:
            h.at(_at(day, 18))
            h.reverse(1)
        if day == 70:
            # A redemption reversed after its card's expiry: breakage at the reversal.
            h.reverse(1, expires_at__lt=timezone.now())
    h.at(_at(DAYS, 12))
    return h


def _product_liability(day: dt.date) -> dict:
    return {
        (row["currency"], row["reseller_id"]): (
            row["count"],
            row["value"],
            row["blocked_value"],
            row["dormant_value"],
        )
        for row in liability(as_of=end_of_day(day), group_by="reseller")
    }


def _by_day(rows, fields):
    result = defaultdict(dict)
    for row in rows:
        for name in fields:
            if row[name]:
                result[row["period"]][(name, row["currency"], row["reseller_id"])] = row[name]
    return result


def _check_every_figure(days: list[dt.date]) -> None:
    # Liability as of every day, by currency and reseller, with its blocked part.
    expected_liability = {day: oracle.liability(end_of_day(day)) for day in days}
    # Dormant stock on many days, blocked dormant stock on some: the flags are exercised.
    dormant_days = [day for day in days if any(v[3] for v in expected_liability[day].values())]
    assert len(dormant_days) > 20
    for day in days:
        assert _product_liability(day) == expected_liability[day], day

    expected = {day: oracle.movements(start_of_day(day), end_of_day(day)) for day in days}
    # The oracle ties on its own: liability(D - 1) + movements(D) = liability(D).
    for previous, day in zip(days, days[1:], strict=False):
        carried = defaultdict(D)
        for (currency, reseller), (_, value, _, _) in expected_liability[previous].items():
            carried[(currency, reseller)] += value
        for (kind, currency, reseller), value in expected[day].items():
            if kind != "breakage_blocked":
                carried[(currency, reseller)] += value
        closing = {k: v for k, v in carried.items() if v}
        assert closing == {k: v[1] for k, v in expected_liability[day].items() if v[1]}, day

    # Breakage per day: booked on the day the expiry passed (and written off / reinstated on
    # the day of the change), each under the reseller of the card then.
    period = Period(days[0], days[-1], Granularity.DAY)
    rows = breakage(period=period, breakdown="reseller")
    got = _by_day(rows, ("value", "blocked_value", "written_off", "reinstated"))
    for day in days:
        want = {}
        for (kind, currency, reseller), value in expected[day].items():
            name = {
                "breakage": "value",
                "breakage_blocked": "blocked_value",
                "written_off": "written_off",
                "reinstated": "reinstated",
            }.get(kind)
            if name is not None:
                want[(name, currency, reseller)] = value if kind == "reinstated" else -value
        assert got.get(day, {}) == want, day

    # The roll-forward per day: every movement as the oracle has it, opening and closing as its
    # liability, and the check at zero.
    rows = rollforward(period=period, breakdown="reseller")
    got = _by_day(rows, COLUMNS)
    for day in days:
        want = {
            (kind, currency, reseller): value
            for (kind, currency, reseller), value in expected[day].items()
            if kind in COLUMNS
        }
        assert got.get(day, {}) == want, day
    for row in rows:
        key = (row["currency"], row["reseller_id"])
        before = expected_liability.get(row["period"] - dt.timedelta(days=1))
        if before is not None:
            assert row["opening"] == before.get(key, (0, D(0), 0))[1], row
        assert row["closing"] == expected_liability[row["period"]].get(key, (0, D(0), 0))[1], row
        assert row["difference"] == 0, row

    # Per month: opening + movements = closing, and both are the oracle's liability.
    months = rollforward(period=Period(days[0], days[-1], Granularity.MONTH), breakdown="reseller")
    assert months
    for row in months:
        key = (row["currency"], row["reseller_id"])
        movements = sum((row[kind] for kind in COLUMNS), D(0))
        assert row["opening"] + movements == row["closing"], row
        assert row["difference"] == 0, row
        month_end = min(
            (row["period"] + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1),
            days[-1],
        )
        assert row["closing"] == expected_liability[month_end].get(key, (0, D(0), 0))[1], row


def _sorted(rows: list[dict]) -> list[tuple]:
    return sorted(tuple(sorted((k, str(v)) for k, v in row.items())) for row in rows)


def test_every_dated_figure_equals_an_independent_recomputation_on_every_day(monkeypatch):
    with time_machine.travel(_at(0, 7), tick=False) as traveller:
        history = build(traveller, summarize=True)
        days = [FIRST_DAY - dt.timedelta(days=1)] + [
            FIRST_DAY + dt.timedelta(days=n) for n in range(DAYS)
        ]
        # The history holds every kind of change the reports must replay.
        kinds = set(CardEvent.objects.values_list("kind", flat=True))
        assert {"generated", "redeemed", "reversed", "edited", "blocked", "unblocked"} <= kinds
        assert {"delivered"} <= kinds
        assert "deleted" in kinds
        assert CardEvent.objects.filter(kind="edited", card__isnull=True).exists()
        assert history.pins

        # The summary, built night after night while the history went on, and then taking the
        # days since: the same figures as the oracle's.
        assert CardMovementSummary.objects.get().until < FIRST_DAY + dt.timedelta(days=DAYS - 1)
        movement_summary_extend()
        assert CardMovementSummary.objects.get().until == FIRST_DAY + dt.timedelta(days=DAYS)
        _check_every_figure(days)

        # Replayed from the events alone, without the summary: the same figures.
        CardMovementDay.objects.all().delete()
        CardMovementSummary.objects.all().delete()
        _check_every_figure(days)

        # Read a few events and deletions at a time (as a 10M-card history is, in pages that
        # never split one card's events or one serial's deletions): the same movements.
        end = start_of_day(FIRST_DAY + dt.timedelta(days=DAYS))
        middle = start_of_day(FIRST_DAY + dt.timedelta(days=DAYS // 2))
        whole = {w: _sorted(movements(since=w, until=end)) for w in (None, middle)}
        monkeypatch.setattr(replayed, "CHUNK", 3)
        for since, rows in whole.items():
            assert _sorted(movements(since=since, until=end)) == rows
