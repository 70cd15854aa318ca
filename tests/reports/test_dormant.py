"""Dormant cards in the reports (issue 17): issued stock in liability from their generation, shown
apart as "of which dormant" until their box is delivered, and not "redeemable" in Expiring soon.

Built through the services under a controlled clock; every figure below is worked out by hand.

| day | 09:00–11:00                                                                            |
|-----|----------------------------------------------------------------------------------------|
| 0   | batch 501 generated dormant: 10 × 10.00 USD, Reseller 1, expiring day 60               |
|     | batch 502 generated live: 2 × 5.00 USD, Reseller 1, expiring day 20                    |
| 1   | 501-2 blocked (dormant); 501-9 moved to Reseller 2 (dormant); 501-10 deleted (dormant) |
| 3   | the box 501-1…501-4 delivered: 1, 3, 4 redeemable, 2 awake but still blocked           |
| 4   | 501-1 redeemed                                                                         |
"""

import datetime as dt
import html
import re
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from cards.models import TopUpCard
from cards.services.delivery import cards_deliver
from cards.services.generation import card_batch_generate
from cards.services.mass_edit import cards_mass_delete, cards_mass_update
from cards.services.redemption import card_redeem
from reports.models import CardMovementDay
from reports.selectors.breakage import breakage
from reports.selectors.common import Granularity, Period, end_of_day
from reports.selectors.liability import liability
from reports.selectors.rollforward import rollforward
from reports.services.summary import movement_summary_extend
from tests.factories import (
    BalanceFactory,
    BalanceTemplateFactory,
    ResellerFactory,
    SubscriberFactory,
    UserFactory,
    WalletFactory,
)

from .test_admin import csv_rows, url

pytestmark = pytest.mark.django_db

D = Decimal
DAY0 = dt.date(2026, 3, 2)


def _at(day: int, hour: int) -> dt.datetime:
    return dt.datetime.combine(DAY0 + dt.timedelta(days=day), dt.time(hour), tzinfo=dt.UTC)


def _card(number: int) -> TopUpCard:
    return TopUpCard.objects.get(series="501", number=number)


def _cards(*numbers: int):
    return TopUpCard.objects.filter(series="501", number__in=numbers)


@pytest.fixture
def history():
    r1 = ResellerFactory(name="Reseller 1")
    r2 = ResellerFactory(name="Reseller 2")
    operator = UserFactory(is_staff=True, is_superuser=True)
    with time_machine.travel(_at(0, 9), tick=False) as clock:
        subscriber = SubscriberFactory(reseller=r1)
        balance = BalanceFactory(
            wallet=WalletFactory(subscription__subscriber=subscriber),
            template=BalanceTemplateFactory(currency="USD"),
            is_main=True,
        )
        dormant = card_batch_generate(
            series="501",
            quantity=10,
            amount="10.00",
            currency="USD",
            pin_length=12,
            reseller=r1,
            expires_at=_at(60, 9),
            dormant=True,
            actor=operator,
        )
        card_batch_generate(
            series="502",
            quantity=2,
            amount="5.00",
            currency="USD",
            pin_length=12,
            reseller=r1,
            expires_at=_at(20, 9),
            actor=operator,
        )
        clock.move_to(_at(1, 10))
        cards_mass_update(cards=_cards(2), blocked=True, actor=operator)
        cards_mass_update(cards=_cards(9), reseller=r2, actor=operator)
        cards_mass_delete(cards=_cards(10), actor=operator)
        clock.move_to(_at(3, 11))
        cards_deliver(
            series="501", first_number=1, last_number=4, reference="box 1", actor=operator
        )
        clock.move_to(_at(4, 9))
        card_redeem(pin=dormant.pins[0], balance=balance, subscriber=subscriber)
        clock.move_to(_at(5, 12))
        yield {"r1": r1.pk, "r2": r2.pk, "clock": clock}


# (reseller, cards, liability, of which blocked, of which dormant) at the close of each day.
EXPECTED = {
    -1: set(),
    0: {("r1", 12, D("110.00"), D("0.00"), D("100.00"))},
    1: {("r1", 10, D("90.00"), D("10.00"), D("80.00")), ("r2", 1, D("10.00"), D(0), D("10.00"))},
    2: {("r1", 10, D("90.00"), D("10.00"), D("80.00")), ("r2", 1, D("10.00"), D(0), D("10.00"))},
    3: {("r1", 10, D("90.00"), D("10.00"), D("40.00")), ("r2", 1, D("10.00"), D(0), D("10.00"))},
    4: {("r1", 9, D("80.00"), D("10.00"), D("40.00")), ("r2", 1, D("10.00"), D(0), D("10.00"))},
}


def _liability(history, day: int) -> set:
    names = {history["r1"]: "r1", history["r2"]: "r2"}
    return {
        (
            names[row["reseller_id"]],
            row["count"],
            row["value"],
            row["blocked_value"],
            row["dormant_value"],
        )
        for row in liability(as_of=end_of_day(DAY0 + dt.timedelta(days=day)))
    }


def test_liability_shows_the_dormant_part_on_every_day_replayed_and_summarized(history):
    for day, expected in EXPECTED.items():
        assert _liability(history, day) == expected, day

    movement_summary_extend()
    assert CardMovementDay.objects.filter(dormant=True).exists()
    for day, expected in EXPECTED.items():
        assert _liability(history, day) == expected, day


def test_a_delivery_moves_no_value_in_the_roll_forward(history):
    rows = rollforward(period=Period(DAY0, DAY0 + dt.timedelta(days=4), Granularity.DAY))
    by_day = {(row["period"], row["reseller_id"]): row for row in rows}

    delivered = by_day[(DAY0 + dt.timedelta(days=3), history["r1"])]
    assert delivered["opening"] == delivered["closing"] == D("90.00")
    assert delivered["difference"] == 0
    assert all(row["difference"] == 0 for row in rows)
    # Dormant cards are issued on their generation, deleted and moved like any other.
    first = by_day[(DAY0, history["r1"])]
    assert first["issued"] == D("110.00")
    second = by_day[(DAY0 + dt.timedelta(days=1), history["r1"])]
    assert (second["deleted"], second["moved"]) == (D("-10.00"), D("-10.00"))


def _section_rows(response, key: str) -> list[list[str]]:
    body = response.content.decode()
    section = re.search(rf'<section [^>]*id="section-{key}".*?</section>', body, re.S)
    assert section is not None, key
    tbody = re.search(r"<tbody>(.*?)</tbody>", section.group(0), re.S)
    if tbody is None:
        return []
    return [
        [html.unescape(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", tbody.group(1), re.S)
    ]


def test_expiring_soon_counts_only_redeemable_cards_and_shows_dormant_stock_apart(
    history, admin_client
):
    response = admin_client.get(url("expiringreport"))

    assert response.status_code == 200
    # Redeemable now: 502-1 and 502-2 (day 20) and the delivered, unblocked 501-3 and 501-4
    # (day 60); not 501-2 (delivered, blocked), not 501-1 (redeemed), none of the dormant ones.
    assert _section_rows(response, "expiring") == [
        ["USD", "Reseller 1", "0", "0.00", "2", "10.00", "4", "30.00"],
    ]
    # Apart: 501-5…501-8 of Reseller 1 and 501-9 moved to Reseller 2, expiring day 60.
    assert _section_rows(response, "dormant") == [
        ["USD", "Reseller 1", "0", "0.00", "0", "0.00", "4", "40.00"],
        ["USD", "Reseller 2", "0", "0.00", "0", "0.00", "1", "10.00"],
    ]
    assert "not in the first table but in their own" in response.content.decode()

    csv = csv_rows(admin_client.get(url("expiringreport"), {"format": "csv", "table": "dormant"}))
    assert csv[0][:2] == ["Currency", "Reseller"]
    assert csv[1:3] == [
        ["USD", "Reseller 1", "0", "0.00", "0", "0.00", "4", "40.00"],
        ["USD", "Reseller 2", "0", "0.00", "0", "0.00", "1", "10.00"],
    ]


def test_liability_page_and_csv_carry_the_dormant_column(history, admin_client):
    query = {"as_of": (DAY0 + dt.timedelta(days=3)).isoformat()}

    rows = csv_rows(admin_client.get(url("liabilityreport"), {**query, "format": "csv"}))

    assert rows == [
        ["Currency", "Reseller", "Cards", "Liability", "of which blocked", "of which dormant"],
        ["USD", "Reseller 1", "10", "90.00", "10.00", "40.00"],
        ["USD", "Reseller 2", "1", "10.00", "0.00", "10.00"],
        ["USD", "Total", "11", "100.00", "10.00", "50.00"],
    ]
    page = admin_client.get(url("liabilityreport"), query).content.decode()
    assert '<th scope="col" class="num">of which dormant</th>' in page
    assert timezone.now() == _at(5, 12)


def test_breakage_shows_the_part_that_expired_still_dormant(history, admin_client, admin_user):
    """When batch 501 expires (day 60), the cards of the box never delivered are breakage of
    stock that was never for sale: "of which dormant", under the reseller each had then. The
    delivered ones (3, 4; 2 blocked) and batch 502 (day 20) are breakage with none dormant."""
    history["clock"].move_to(_at(61, 12))
    period = Period(DAY0, DAY0 + dt.timedelta(days=61), Granularity.DAY)
    names = {history["r1"]: "r1", history["r2"]: "r2"}

    rows = {
        (row["period"], names[row["reseller_id"]]): (
            row["count"],
            row["value"],
            row["blocked_value"],
            row["dormant_value"],
        )
        for row in breakage(period=period, breakdown="reseller")
        if row["count"]
    }

    day20, day60 = DAY0 + dt.timedelta(days=20), DAY0 + dt.timedelta(days=60)
    assert rows == {
        (day20, "r1"): (2, D("10.00"), D(0), D(0)),
        (day60, "r1"): (7, D("70.00"), D("10.00"), D("40.00")),
        (day60, "r2"): (1, D("10.00"), D(0), D("10.00")),
    }
    query = {
        "date_from": DAY0.isoformat(),
        "date_to": day60.isoformat(),
        "granularity": "month",
        "breakdown": "reseller",
    }
    admin_client.force_login(admin_user)  # the session of day 5 has expired by day 61
    page = admin_client.get(url("breakagereport"), query).content.decode()
    assert '<th scope="col" class="num">of which dormant</th>' in page
    rows = csv_rows(admin_client.get(url("breakagereport"), {**query, "format": "csv"}))
    header = rows[0]
    total = rows[-1]
    assert header[header.index("Breakage") + 2] == "of which dormant"
    assert total[header.index("of which dormant")] == "50.00"
