"""Liability as of a past date reads each card's block, expiry and reseller as they were then.

The finance fixture of conftest.py (D = end of last month, T = first instant of D + 1) plus these
cards, all USD series 100, created T-10d, changed through `cards_mass_update` (so the audit events
are written as in production) and then dated by moving the events' time. Amounts are distinct
powers of two times 1,000.

| card | amount | state before T              | changes after T (Mass Edit)                  |
|------|--------|-----------------------------|----------------------------------------------|
| e1   | 1000   | R1, expires T+30d           | blocked at T+1h                              |
| e2   | 2000   | R1, blocked, expires T+200d | unblocked at T+1h                            |
| e3   | 4000   | R1, expired T-2d            | expiry extended to T+100d at T+1h            |
| e4   | 8000   | R1, expires T+100d          | expiry shortened to T-1d at T+1h             |
| e5   | 16000  | R1, expires T+30d           | moved to R2 at T+1h                          |
| e6   | 32000  | R1, expires T+100d          | expiry to T-1d at T+1h, then to T-2d at T+2h |
| e7   | 64000  | R1, expires T+30d           | moved to R2 at T+1h, then to none at T+2h    |
| e8   | 128000 | no reseller, expires T+30d  | moved to R2 at T+1h                          |
| e9   | 256000 | R1, expires T+30d           | blocked at T-1d (before T: blocked on D too) |
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from cards import events
from cards.models import CardEvent, TopUpCard
from cards.services.mass_edit import cards_mass_update
from cards.sql import selection as sql
from reports.selectors.common import NO_RESELLER, end_of_day
from reports.selectors.liability import liability
from tests.factories import TopUpCardFactory

from .conftest import DAY, HOUR
from .test_admin import table_rows, url

pytestmark = pytest.mark.django_db

D = Decimal


def _edit(card: TopUpCard, at: dt.datetime, **changes) -> None:
    """One Mass Edit of one card, its audit event dated `at`.

    Mass Edit refuses an expiry that is not in the future (docs/cards.md); cards edited so by an
    earlier version still exist, so such an expiry is written as the service wrote it then: the
    same event (cards.events) and update, in one transaction."""
    last = CardEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    selected = TopUpCard.objects.filter(pk=card.pk)
    expires_at = changes.get("expires_at")
    if expires_at is not None and expires_at <= timezone.now():
        with transaction.atomic():
            sql.insert_card_events(
                selected, event=events.expiry_edited_events(expires_at), actor=None
            )
            selected.update(expires_at=expires_at)
    else:
        cards_mass_update(cards=selected, actor=None, **changes)
    assert CardEvent.objects.filter(pk__gt=last).update(created_at=at) == 1


@pytest.fixture
def edited(finance):
    T, r1, r2 = finance.T, finance.r1, finance.r2

    def card(name, amount, *, reseller=r1, expires_at=T + 30 * DAY, blocked=False):
        finance.cards[name] = TopUpCardFactory(
            amount=D(amount),
            reseller=reseller,
            currency="USD",
            series="100",
            created_at=T - 10 * DAY,
            expires_at=expires_at,
            blocked=blocked,
        )
        return finance.cards[name]

    _edit(card("e1", "1000"), T + HOUR, blocked=True)
    _edit(card("e2", "2000", blocked=True, expires_at=T + 200 * DAY), T + HOUR, blocked=False)
    _edit(card("e3", "4000", expires_at=T - 2 * DAY), T + HOUR, expires_at=T + 100 * DAY)
    _edit(card("e4", "8000", expires_at=T + 100 * DAY), T + HOUR, expires_at=T - DAY)
    _edit(card("e5", "16000"), T + HOUR, reseller=r2)
    e6 = card("e6", "32000", expires_at=T + 100 * DAY)
    _edit(e6, T + HOUR, expires_at=T - DAY)
    _edit(e6, T + 2 * HOUR, expires_at=T - 2 * DAY)
    e7 = card("e7", "64000")
    _edit(e7, T + HOUR, reseller=r2)
    _edit(e7, T + 2 * HOUR, reseller=None)
    _edit(card("e8", "128000", reseller=None), T + HOUR, reseller=r2)
    _edit(card("e9", "256000"), T - DAY, blocked=True)
    return finance


def _liability(day, **kwargs):
    return [
        (r["currency"], r.get("reseller"), r.get("series"), r["count"], r["value"])
        for r in liability(as_of=end_of_day(day), **kwargs)
    ]


def _blocked(day, **kwargs):
    return [r["blocked_value"] for r in liability(as_of=end_of_day(day), **kwargs)]


def test_the_cards_count_as_they_were_before_the_changes_and_as_they_are_after(edited):
    # USD R1: the fixture's 8 cards, 9733 (blocked ones included) + e1 (blocked only after D)
    # + e2 and e9 (blocked on D: still owed) + e4 (expiry shortened after D) + e5 and e7
    # (moved away after D) + e6 (the earliest change's old expiry, T+100d). Not e3 (expired
    # before its extension). No reseller: c14 11 + e8 (moved to R2 after D).
    assert 9733 + 1000 + 2000 + 8000 + 16000 + 32000 + 64000 + 256000 == 388733
    assert _liability(edited.day, currency="USD") == [
        ("USD", "Reseller 1", None, 15, D("388733")),
        ("USD", "Reseller 2", None, 1, D("7")),
        ("USD", NO_RESELLER, None, 2, D("128011")),
    ]
    # Of which blocked on D: c8 1280 and c10 5120 (the fixture's), e2 and e9; not e1.
    assert _blocked(edited.day, currency="USD") == [D("264400"), D("0"), D("0")]
    # D + 1 closes at T + 1d: the fixture's 9933 (c1, c6, c7, c8, c9, c10, c11) + e1 (blocked
    # since) + e2 (unblocked) + e3 (extended) + e9; e4 and e6 written off. R2: c12 7 + e5 + e8.
    # No reseller: c14 + e7.
    assert _liability(edited.day + dt.timedelta(days=1), currency="USD") == [
        ("USD", "Reseller 1", None, 11, D("272933")),
        ("USD", "Reseller 2", None, 3, D("144007")),
        ("USD", NO_RESELLER, None, 2, D("64011")),
    ]
    assert _blocked(
        edited.day + dt.timedelta(days=1), currency="USD", reseller_id=edited.r1.pk
    ) == [D("1280") + D("5120") + D("2560") + D("1000") + D("256000")]


def test_a_reseller_filter_reads_the_reseller_the_card_had_then(edited):
    r1, r2 = edited.r1.pk, edited.r2.pk
    day, next_day = edited.day, edited.day + dt.timedelta(days=1)
    assert _liability(day, reseller_id=r2) == [("USD", "Reseller 2", None, 1, D("7"))]
    assert _liability(next_day, reseller_id=r2) == [("USD", "Reseller 2", None, 3, D("144007"))]
    assert _liability(next_day, reseller_id=r1, currency="USD") == [
        ("USD", "Reseller 1", None, 11, D("272933"))
    ]
    # By series and currency the changed cards merge into the same rows.
    assert _liability(day, reseller_id=r1, group_by="series", series="100") == [
        ("USD", "Reseller 1", "100", 14, D("388730"))
    ]
    assert _liability(day, group_by="currency", currency="USD") == [
        ("USD", None, None, 18, D("516751"))
    ]


def test_a_reseller_scoped_user_sees_the_cards_that_were_theirs_then(edited, r1_client):
    on_d = r1_client.get(url("liabilityreport"), {"as_of": edited.day})
    after = r1_client.get(url("liabilityreport"), {"as_of": edited.day + dt.timedelta(days=1)})

    assert table_rows(on_d) == [
        ["EUR", "Reseller 1", "1", "5.00", "0.00", "0.00"],
        ["USD", "Reseller 1", "15", "388,733.00", "264,400.00", "0.00"],
    ]
    assert table_rows(after) == [
        ["EUR", "Reseller 1", "1", "5.00", "0.00", "0.00"],
        ["USD", "Reseller 1", "11", "272,933.00", "265,960.00", "0.00"],
    ]


def test_a_change_at_the_closing_instant_belongs_to_the_next_day(edited):
    # A block at T exactly: the card is not yet blocked on D (events at T belong to D + 1);
    # owed on both days. Cents add up exactly with an unchanged card's in the same row.
    gbp = {"currency": "GBP", "created_at": edited.T - DAY, "expires_at": edited.T + DAY}
    changed = TopUpCardFactory(amount=D("512000.25"), **gbp)
    TopUpCardFactory(amount=D("0.10"), **gbp)
    _edit(changed, edited.T, blocked=True)
    on_d = liability(as_of=end_of_day(edited.day), currency="GBP", group_by="currency")
    on_next = liability(
        as_of=end_of_day(edited.day + dt.timedelta(days=1)), currency="GBP", group_by="currency"
    )
    assert [(r["count"], r["value"], r["blocked_value"]) for r in on_d] == [
        (2, D("512000.35"), D("0"))
    ]
    assert [(r["count"], r["value"], r["blocked_value"]) for r in on_next] == [
        (2, D("512000.35"), D("512000.25"))
    ]
