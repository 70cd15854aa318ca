"""Dormant until delivered (docs/cards.md): a batch generated dormant cannot be redeemed until
the operator records its box as delivered, which wakes exactly that serial range, audited; the
status, Advanced Search, Mass Edit, export and reports know the state."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from cards.events import Delivered, Generated
from cards.exceptions import CardDormant, DeliveryError
from cards.models import CardDelivery, CardEvent, TopUpCard
from cards.models.cards import CardStatus
from cards.models.events import CardEventKind
from cards.services.delivery import cards_deliver
from cards.services.generation import card_batch_generate
from cards.services.redemption import card_redeem
from cards.services.selection import cards_selection_edit
from reports.selectors.liability import liability
from tests.factories import ResellerFactory, StaffResellerFactory, UserFactory
from wallets.models import Balance, LedgerEntry

pytestmark = pytest.mark.django_db


def dormant_batch(quantity=10, *, reseller, series="5", actor=None):
    return card_batch_generate(
        series=series,
        quantity=quantity,
        amount="10.00",
        currency="USD",
        pin_length=12,
        reseller=reseller,
        expires_at=timezone.now() + dt.timedelta(days=60),
        dormant=True,
        actor=actor,
    )


def statuses(series="5"):
    return [card.status for card in TopUpCard.objects.filter(series=series).order_by("number")]


def state():
    return (
        list(Balance.objects.order_by("pk").values_list("pk", "amount")),
        list(TopUpCard.objects.order_by("pk").values_list("pk", "dormant", "activated_at")),
        LedgerEntry.objects.count(),
        CardDelivery.objects.count(),
        CardEvent.objects.exclude(kind=CardEventKind.REDEEM_FAILED).count(),
    )


def test_a_dormant_batch_is_dormant_and_says_so(reseller, admin_user):
    generated = dormant_batch(reseller=reseller, actor=admin_user)

    assert generated.batch.dormant
    assert statuses() == [CardStatus.DORMANT] * 10
    event = CardEvent.objects.get(kind=CardEventKind.GENERATED)
    assert event.changes[Generated.DORMANT] is True


def test_a_dormant_card_is_refused_with_its_own_error_and_nothing_changes(
    reseller, subscriber, main_balance
):
    generated = dormant_batch(reseller=reseller)
    before = state()

    with pytest.raises(CardDormant):
        card_redeem(pin=generated.pins[0], balance=main_balance, subscriber=subscriber)

    assert state() == before
    failure = CardEvent.objects.get(kind=CardEventKind.REDEEM_FAILED)
    # A real card's PIN, not a guess: the event names the card (who holds a box before delivery).
    assert failure.changes == {"reason": "dormant"} and failure.serial == "5-000000001"


def test_delivering_one_range_wakes_exactly_that_range(
    reseller, subscriber, main_balance, admin_user
):
    generated = dormant_batch(reseller=reseller)

    delivery = cards_deliver(
        series="5", first_number=3, last_number=6, reference="Box A-17", actor=admin_user
    )

    assert delivery.woken == 4
    assert statuses() == [CardStatus.DORMANT] * 2 + [CardStatus.NEW] * 4 + [CardStatus.DORMANT] * 4
    events = CardEvent.objects.filter(kind=CardEventKind.DELIVERED).order_by("serial")
    assert [e.serial for e in events] == [f"5-{n:09d}" for n in range(3, 7)]
    assert {e.actor for e in events} == {admin_user}
    assert {e.changes[Delivered.REFERENCE] for e in events} == {"Box A-17"}
    assert {e.changes[Delivered.DELIVERY] for e in events} == {delivery.pk}
    # Woken: redeems. Still dormant: refused.
    card_redeem(pin=generated.pins[2], balance=main_balance, subscriber=subscriber)
    assert Balance.objects.get(pk=main_balance.pk).amount == Decimal("10.00")
    with pytest.raises(CardDormant):
        card_redeem(pin=generated.pins[6], balance=main_balance, subscriber=subscriber)


def test_a_range_without_dormant_cards_or_a_changed_count_wakes_nothing(reseller, admin_user):
    dormant_batch(reseller=reseller)
    cards_deliver(series="5", first_number=1, last_number=2, reference="Box 1", actor=admin_user)
    before = state()

    with pytest.raises(DeliveryError, match="No dormant card"):
        cards_deliver(
            series="5", first_number=1, last_number=2, reference="Box 1", actor=admin_user
        )
    with pytest.raises(DeliveryError, match="now holds 8 dormant cards, not 9"):
        cards_deliver(
            series="5", first_number=1, last_number=10, reference="B", expected=9, actor=admin_user
        )
    with pytest.raises(DeliveryError, match="Name the box"):
        cards_deliver(series="5", first_number=3, last_number=4, reference=" ", actor=admin_user)

    assert state() == before


def test_another_resellers_staff_wake_nothing(reseller, admin_user):
    dormant_batch(reseller=reseller)
    stranger = UserFactory(is_staff=True)
    StaffResellerFactory(user=stranger, reseller=ResellerFactory(name="Reseller 2"))
    before = state()

    with pytest.raises(DeliveryError, match="No dormant card"):
        cards_deliver(series="5", first_number=1, last_number=10, reference="X", actor=stranger)

    assert state() == before


def test_the_admin_checks_the_range_then_wakes_it(reseller, admin_client, admin_user):
    dormant_batch(reseller=reseller)
    url = reverse("admin:cards_carddelivery_add")
    fields = {"first_serial": "5-000000004", "last_serial": "5-000000005", "reference": "Box 9"}

    checked = admin_client.post(url, {**fields, "_check": "1"})

    assert "2 cards of this range will become redeemable" in checked.content.decode()
    assert statuses().count(CardStatus.DORMANT) == 10
    done = admin_client.post(url, {**fields, "expected": "2", "_confirm": "1"}, follow=True)
    assert "2 cards woke up" in done.content.decode()
    assert statuses().count(CardStatus.DORMANT) == 8
    assert CardDelivery.objects.get().delivered_by == admin_user


def test_recording_a_delivery_needs_its_permission(reseller, client):
    dormant_batch(reseller=reseller)
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_topupcard"))
    client.force_login(user)
    fields = {"first_serial": "5-000000001", "last_serial": "5-000000010", "reference": "B"}

    response = client.post(
        reverse("admin:cards_carddelivery_add"), {**fields, "expected": "10", "_confirm": "1"}
    )

    assert response.status_code == 403
    assert statuses().count(CardStatus.DORMANT) == 10


def test_search_mass_edit_and_export_know_the_dormant_state(reseller, admin_client, admin_user):
    dormant_batch(reseller=reseller)
    cards_deliver(series="5", first_number=1, last_number=3, reference="B", actor=admin_user)

    listing = admin_client.get(reverse("admin:cards_topupcard_changelist"), {"status": "dormant"})
    assert listing.context["cl"].result_count == 7
    # Unblocking (or any Mass Edit) never wakes a card: only a delivery does.
    dormant = TopUpCard.objects.with_status(CardStatus.DORMANT)
    cards_selection_edit(cards=dormant, changes={"blocked": True}, actor=admin_user)
    cards_selection_edit(
        cards=TopUpCard.objects.filter(series="5"), changes={"blocked": False}, actor=admin_user
    )
    assert statuses().count(CardStatus.DORMANT) == 7
    export = admin_client.get(reverse("admin:cards_topupcard_export_csv"), {"series": "5"})
    body = b"".join(export.streaming_content).decode()
    assert body.count(",Dormant (not delivered),") + body.count(",dormant,") == 7


def test_dormant_cards_count_in_liability_like_any_card_not_yet_sold(reseller, admin_user):
    """The reports count every issued card, sold or not (reports/README.md): a dormant card is
    one more card not yet sold, and its delivery changes no figure."""
    dormant_batch(reseller=reseller)
    (row,) = liability(as_of=timezone.now() + dt.timedelta(seconds=1))
    assert (row["count"], row["value"]) == (10, Decimal("100.00"))

    cards_deliver(series="5", first_number=1, last_number=4, reference="B", actor=admin_user)

    (row,) = liability(as_of=timezone.now() + dt.timedelta(seconds=1))
    assert (row["count"], row["value"]) == (10, Decimal("100.00"))
