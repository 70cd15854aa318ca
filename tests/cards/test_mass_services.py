"""Services behind the admin screens: Mass Edit, delete, PIN reveal; concurrent generation."""

import datetime as dt
import threading

import pytest
from django.db import connections
from django.utils import timezone

from cards.exceptions import CardEditError, CardPermissionDenied
from cards.models import CardBatch, CardEvent, TopUpCard
from cards.models.events import CardEventKind
from cards.selectors import InvalidCardSearch, card_count, card_list
from cards.services.generation import card_batch_generate
from cards.services.mass_edit import cards_mass_delete, cards_mass_update
from cards.services.reveal import card_pin_reveal
from subscribers.models import StaffReseller
from tests.cards.admin_helpers import operator, snapshot
from tests.factories import ResellerFactory, TopUpCardFactory


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"expires_at": "2030-01-01"}, "expires_at"),
        ({"expires_at": dt.datetime(2030, 1, 1)}, "expires_at"),  # naive
        ({"reseller": "Reseller 1"}, "reseller"),
        ({"blocked": "yes"}, "blocked"),
    ],
)
def test_mass_update_refuses_bad_values_and_changes_nothing(changes, field):
    TopUpCardFactory.create_batch(3)
    before = snapshot(TopUpCard), snapshot(CardEvent)

    with pytest.raises(CardEditError) as error:
        cards_mass_update(cards=TopUpCard.objects.all(), actor=None, **changes)

    assert error.value.field == field
    assert (snapshot(TopUpCard), snapshot(CardEvent)) == before


@pytest.mark.django_db
def test_a_scoped_actor_cannot_give_cards_to_another_reseller():
    mine, theirs = ResellerFactory(name="Mine"), ResellerFactory(name="Theirs")
    user = operator(username="scoped")
    StaffReseller.objects.create(user=user, reseller=mine)
    TopUpCardFactory(reseller=mine)
    before = snapshot(TopUpCard)

    with pytest.raises(CardPermissionDenied):
        cards_mass_update(cards=TopUpCard.objects.all(), reseller=theirs, actor=user)
    with pytest.raises(CardPermissionDenied):
        cards_mass_update(cards=TopUpCard.objects.all(), reseller=None, actor=user)

    assert snapshot(TopUpCard) == before


@pytest.mark.django_db
def test_mass_update_never_touches_activated_cards(subscriber):
    activated = TopUpCardFactory(activated_at=timezone.now(), activated_by=subscriber)
    fresh = TopUpCardFactory()

    result = cards_mass_update(
        cards=TopUpCard.objects.all(), blocked=True, reseller=None, actor=None
    )

    assert result.selected == 1 and result.changed == {"reseller": 1, "blocked": 1}
    activated.refresh_from_db()
    fresh.refresh_from_db()
    assert not activated.blocked and activated.reseller_id is not None
    assert fresh.blocked and fresh.reseller_id is None
    assert set(CardEvent.objects.values_list("card", flat=True)) == {fresh.pk}


@pytest.mark.django_db
def test_mass_delete_keeps_activated_cards(subscriber):
    activated = TopUpCardFactory(activated_at=timezone.now(), activated_by=subscriber)
    TopUpCardFactory.create_batch(2)

    deleted = cards_mass_delete(cards=TopUpCard.objects.all(), actor=None)

    assert deleted == 2
    assert list(TopUpCard.objects.all()) == [activated]
    assert CardEvent.objects.filter(kind=CardEventKind.DELETED, card=None).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "empty",
    [lambda: TopUpCard.objects.none(), lambda: TopUpCard.objects.filter(pk__in=[])],
    ids=["none", "pk-in-empty-list"],
)
def test_mass_edit_and_delete_of_an_empty_selection_change_nothing(empty):
    """A selection with no SQL (an empty `IN ()`, `.none()`) raised EmptyResultSet."""
    TopUpCardFactory.create_batch(2)
    before = snapshot(TopUpCard), snapshot(CardEvent)

    result = cards_mass_update(
        cards=empty(), blocked=True, expires_at=timezone.now() + dt.timedelta(days=1), actor=None
    )
    deleted = cards_mass_delete(cards=empty(), actor=None)

    assert result.selected == 0 and result.changed == {"expires_at": 0, "blocked": 0}
    assert deleted == 0
    assert (snapshot(TopUpCard), snapshot(CardEvent)) == before


@pytest.mark.django_db
def test_pin_reveal_needs_the_permission_and_records_nothing_when_refused():
    card = TopUpCardFactory()
    user = operator(username="plain")

    with pytest.raises(CardPermissionDenied):
        card_pin_reveal(card=card, actor=user)
    with pytest.raises(CardPermissionDenied):
        card_pin_reveal(card=card, actor=None)

    assert not CardEvent.objects.exists()


@pytest.mark.django_db
def test_card_list_refuses_an_invalid_search_rather_than_widening_it():
    TopUpCardFactory.create_batch(2)

    with pytest.raises(InvalidCardSearch) as error:
        card_list(filters={"serial_from": "nonsense", "status": "new"}, user=None)

    assert "serial_from" in error.value.errors


@pytest.mark.django_db
def test_card_list_accepts_a_pin_directly_for_programmatic_callers():
    card, _ = TopUpCardFactory(), TopUpCardFactory()

    assert list(card_list(filters={"pin": card.pin}, user=None)) == [card]
    with pytest.raises(InvalidCardSearch):
        card_list(filters={"pin": card.pin[:-1] + str((int(card.pin[-1]) + 1) % 10)}, user=None)


@pytest.mark.django_db
def test_card_count_is_exact_up_to_the_cap():
    TopUpCardFactory.create_batch(4)

    assert card_count(TopUpCard.objects.all(), cap=10).value == 4
    assert card_count(TopUpCard.objects.all(), cap=10).exact


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_operators_generating_into_one_series_at_once_get_contiguous_distinct_serials():
    barrier = threading.Barrier(2)
    errors: list[Exception] = []

    def generate():
        try:
            barrier.wait()
            card_batch_generate(
                series="42",
                quantity=300,
                amount="5",
                currency="USD",
                pin_length=12,
                reseller=None,
                expires_at=timezone.now() + dt.timedelta(days=3),
            )
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=generate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    numbers = sorted(TopUpCard.objects.filter(series="42").values_list("number", flat=True))
    assert numbers == list(range(1, 601))
    for batch in CardBatch.objects.all():
        got = sorted(batch.cards.values_list("number", flat=True))
        assert got == list(range(batch.first_number, batch.first_number + 300))


@pytest.mark.django_db
def test_a_scoped_actor_generates_only_for_their_reseller():
    mine, theirs = ResellerFactory(name="Mine"), ResellerFactory(name="Theirs")
    user = operator(username="scoped")
    StaffReseller.objects.create(user=user, reseller=mine)
    params = {
        "series": "3",
        "quantity": 2,
        "amount": "5",
        "currency": "USD",
        "pin_length": 12,
        "expires_at": timezone.now() + dt.timedelta(days=3),
        "actor": user,
    }

    from cards.exceptions import GenerationError

    for reseller in (theirs, None):
        with pytest.raises(GenerationError) as error:
            card_batch_generate(reseller=reseller, **params)
        assert error.value.field == "reseller"
    assert not TopUpCard.objects.exists() and not CardBatch.objects.exists()
    card_batch_generate(reseller=mine, **params)
    assert TopUpCard.objects.filter(reseller=mine).count() == 2
