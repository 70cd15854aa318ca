"""Issue 19: a closed period's figures never change, and the roll-forward ties on the page, in
the CSV and in a reseller's scoped view.

March 2026, built through the services under a controlled clock: Reseller 1's USD cards, some
expiring in March (one of them blocked), one moved to Reseller 2. Finance asks March's breakage and
liability on April 2; on April 6 operators extend, unblock and delete March's expired cards and
move a running card's expiry into March: March's figures stay, April shows the changes.
"""

import datetime as dt
import re
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from cards import events
from cards.models import TopUpCard
from cards.services.generation import card_batch_generate
from cards.services.mass_edit import cards_mass_delete, cards_mass_update
from cards.sql import selection as sql
from reports.models import CardMovementDay, CardMovementSummary
from reports.selectors.breakage import breakage
from reports.selectors.common import Granularity, Period, end_of_day
from reports.selectors.liability import liability
from reports.selectors.rollforward import rollforward
from reports.services.summary import movement_summary_extend
from reports.tasks import summary_schedule
from tests.factories import BalanceTemplateFactory, ResellerFactory, StaffResellerFactory

from .conftest import _grant_reports
from .test_admin import csv_rows, table_rows, url

pytestmark = pytest.mark.django_db

D = Decimal
UTC = dt.UTC
MARCH = Period(dt.date(2026, 3, 1), dt.date(2026, 3, 31), Granularity.MONTH)
APRIL = Period(dt.date(2026, 4, 1), dt.date(2026, 4, 30), Granularity.MONTH)


def _at(month: int, day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=UTC)


@pytest.fixture
def march(db):
    with time_machine.travel(_at(2, 20), tick=False) as clock:
        r1 = ResellerFactory(name="Reseller 1")
        r2 = ResellerFactory(name="Reseller 2")
        BalanceTemplateFactory(currency="USD")  # cards only in a currency a balance can hold

        def batch(series, amount, expires_at, quantity=2):
            result = card_batch_generate(
                series=series,
                quantity=quantity,
                amount=amount,
                currency="USD",
                pin_length=12,
                reseller=r1,
                expires_at=expires_at,
            )
            return list(TopUpCard.objects.filter(batch=result.batch).order_by("number"))

        expire_10 = batch("1", "10", _at(3, 10))  # 2 × 10: breakage of March
        expire_20 = batch("2", "100", _at(3, 20))  # 2 × 100: breakage of March, one blocked
        running = batch("3", "1000", _at(6, 1))  # 2 × 1000: still owed
        clock.move_to(_at(3, 5))
        cards_mass_update(
            cards=TopUpCard.objects.filter(pk=expire_20[0].pk), blocked=True, actor=None
        )
        cards_mass_update(cards=TopUpCard.objects.filter(pk=running[1].pk), reseller=r2, actor=None)
        clock.move_to(_at(4, 2))
        yield {
            "clock": clock,
            "r1": r1,
            "r2": r2,
            "expire_10": expire_10,
            "expire_20": expire_20,
            "running": running,
        }


def _march_figures(r1):
    rows = breakage(period=MARCH, breakdown="reseller")
    owed = liability(as_of=end_of_day(dt.date(2026, 3, 31)), group_by="reseller")
    return (
        [(r["period"], r["reseller"], r["count"], r["value"], r["blocked_value"]) for r in rows],
        [(r["reseller"], r["count"], r["value"], r["blocked_value"]) for r in owed],
        [(r["reseller_id"], r["opening"], r["closing"]) for r in rollforward(period=MARCH)],
    )


def _change_march_cards_in_april(march):
    """Extend, unblock and delete March's expired cards; move a running card's expiry into
    March (as an earlier Mass Edit could: its events and update in one transaction)."""
    march["clock"].move_to(_at(4, 6))
    extended, deleted = march["expire_10"]
    unblocked = march["expire_20"][0]
    cards_mass_update(
        cards=TopUpCard.objects.filter(pk=extended.pk), expires_at=_at(5, 31), actor=None
    )
    cards_mass_update(cards=TopUpCard.objects.filter(pk=unblocked.pk), blocked=False, actor=None)
    cards_mass_delete(cards=TopUpCard.objects.filter(pk=deleted.pk), actor=None)
    into_march = TopUpCard.objects.filter(pk=march["running"][0].pk)
    with transaction.atomic():
        sql.insert_card_events(
            into_march, event=events.expiry_edited_events(_at(3, 15)), actor=None
        )
        into_march.update(expires_at=_at(3, 15))


@pytest.mark.parametrize("summarized", [False, True], ids=["replayed", "summarized"])
def test_a_closed_months_figures_never_change(march, summarized):
    r1 = march["r1"]
    if summarized:
        assert movement_summary_extend() > 0
    before = _march_figures(r1)
    # March: 2 × 10 on 03-10, 2 × 100 on 03-20 (one blocked then); owed at its end: Reseller 1
    # the running card 1000, Reseller 2 the one moved there on 03-05.
    assert before[0] == [
        (dt.date(2026, 3, 1), "Reseller 1", 4, D("220"), D("100")),
    ]
    assert before[1] == [("Reseller 1", 1, D("1000"), D("0")), ("Reseller 2", 1, D("1000"), D("0"))]

    _change_march_cards_in_april(march)
    march["clock"].move_to(_at(5, 2))
    if summarized:
        movement_summary_extend()
        assert CardMovementSummary.objects.get().until == dt.date(2026, 5, 2)

    assert _march_figures(r1) == before
    # April has the changes, each in its own column: the extension reinstated 10, the expiry
    # moved into March wrote off 1000 (on 04-06); the deletion and the unblock of expired cards
    # move nothing.
    (april,) = breakage(period=APRIL, breakdown="reseller")
    assert (april["value"], april["written_off"], april["reinstated"], april["net"]) == (
        D("0"),
        D("1000"),
        D("10"),
        D("990"),
    )
    (r1_april,) = [row for row in rollforward(period=APRIL) if row["reseller_id"] == r1.pk]
    assert (r1_april["opening"], r1_april["written_off"], r1_april["reinstated"]) == (
        D("1000"),
        D("-1000"),
        D("10"),
    )
    assert r1_april["closing"] == D("10") and r1_april["difference"] == 0


def test_the_roll_forward_ties_on_the_page_and_in_the_csv(march, client, admin_user):
    march["clock"].move_to(_at(5, 2))
    client.force_login(admin_user)  # a session of the day: older ones have expired
    admin_client = client
    params = {"date_from": "2026-02-01", "date_to": "2026-04-30", "granularity": "month"}

    page = admin_client.get(url("rollforwardreport"), params)
    download = admin_client.get(url("rollforwardreport"), {**params, "format": "csv"})

    header, *rows = csv_rows(download)
    assert header == [
        "Month",
        "Currency",
        "Reseller",
        "Opening liability",
        "Issued",
        "Redeemed",
        "Redemptions reversed",
        "Breakage",
        "Written off",
        "Reinstated",
        "Deleted",
        "Moved between resellers",
        "Closing liability",
        "Check (opening + movements − closing)",
    ]
    z = "0.00"
    # Month, currency, reseller, opening, issued, redeemed, reversed, breakage, written off,
    # reinstated, deleted, moved, closing, check.
    assert rows == [
        ["2026-02-01", "USD", "Reseller 1", z, "2220.00", z, z, z, z, z, z, z, "2220.00", z],
        ["2026-03-01", "USD", "Reseller 1", "2220.00", z, z, z, "-220.00", z, z, z, "-1000.00",
         "1000.00", z],
        ["2026-03-01", "USD", "Reseller 2", z, z, z, z, z, z, z, z, "1000.00", "1000.00", z],
        ["2026-04-01", "USD", "Reseller 1", "1000.00", z, z, z, z, z, z, z, z, "1000.00", z],
        ["2026-04-01", "USD", "Reseller 2", "1000.00", z, z, z, z, z, z, z, z, "1000.00", z],
        # The total line: the first month's opening, every movement, the last month's closing.
        ["Total", "USD", "", z, "2220.00", z, z, "-220.00", z, z, z, z, "2000.00", z],
    ]  # fmt: skip
    # The page shows the same rows (months and amounts as people read them), the total below.
    assert table_rows(page) == [
        ["2026-02", "USD", "Reseller 1", z, "2,220.00", z, z, z, z, z, z, z, "2,220.00", z],
        ["2026-03", "USD", "Reseller 1", "2,220.00", z, z, z, "-220.00", z, z, z, "-1,000.00",
         "1,000.00", z],
        ["2026-03", "USD", "Reseller 2", z, z, z, z, z, z, z, z, "1,000.00", "1,000.00", z],
        ["2026-04", "USD", "Reseller 1", "1,000.00", z, z, z, z, z, z, z, z, "1,000.00", z],
        ["2026-04", "USD", "Reseller 2", "1,000.00", z, z, z, z, z, z, z, z, "1,000.00", z],
    ]  # fmt: skip
    assert "2,000.00" in re.search(r"<tfoot>(.*?)</tfoot>", page.content.decode(), re.S).group(1)


def test_a_resellers_scoped_roll_forward_has_its_own_cards_only(march, client):
    user = _grant_reports(StaffResellerFactory(reseller=march["r2"], user__username="r2").user)
    client.force_login(user)
    march["clock"].move_to(_at(4, 2))
    params = {"date_from": "2026-03-01", "date_to": "2026-03-31", "granularity": "month"}

    rows = csv_rows(client.get(url("rollforwardreport"), {**params, "format": "csv"}))
    other = client.get(url("rollforwardreport"), {**params, "reseller": march["r1"].pk})

    # Reseller 2 sees the card moved to it on 03-05 come in, and nothing of Reseller 1.
    z = "0.00"
    assert rows[1:] == [
        ["2026-03-01", "USD", "Reseller 2", z, z, z, z, z, z, z, z, "1000.00", "1000.00", z],
    ]
    assert "Select a valid choice" in other.content.decode()
    assert table_rows(other) == []


def test_the_summary_takes_closed_days_once_from_the_command_and_the_worker_task(march):
    call_command("summarize_reports")
    summarized = CardMovementDay.objects.count()
    state = CardMovementSummary.objects.get()
    # Days close an hour after midnight (REPORTS_SUMMARY_SETTLE): 04-02 10:00 takes up to 04-01.
    assert state.until == dt.date(2026, 4, 2)
    assert summarized > 0

    call_command("summarize_reports")  # nothing new: same rows
    assert CardMovementDay.objects.count() == summarized
    call_command("summarize_reports", "--rebuild")
    assert CardMovementDay.objects.count() == summarized

    assert summary_schedule() is True
    assert summary_schedule() is False  # a second deploy, or `make run` again


def test_a_summary_never_takes_a_day_that_has_not_settled(march):
    march["clock"].move_to(dt.datetime(2026, 4, 3, 0, 30, tzinfo=UTC))
    movement_summary_extend(until=dt.date(2026, 4, 10))
    # 00:30: 04-02 closed only half an hour ago; a transaction from before midnight may still
    # be open.
    assert CardMovementSummary.objects.get().until == dt.date(2026, 4, 2)
    assert timezone.now().date() == dt.date(2026, 4, 3)
