"""PIN reveal, a card's history, the batch page with live figures and the read-only event list."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from cards import pins
from cards.models import CardEvent
from cards.models.events import CardEventKind
from cards.services.generation import card_batch_generate
from tests.cards.admin_helpers import operator, snapshot
from tests.factories import CardEventFactory, TopUpCardFactory

pytestmark = pytest.mark.django_db


def reveal_url(card):
    return reverse("admin:cards_topupcard_reveal_pin", args=[card.pk])


def pin_reader(username="reader"):
    user = operator("view_topupcard", "view_pin", username=username)
    return user


def test_pins_are_masked_for_everyone_by_default(admin_client):
    card = TopUpCardFactory()

    html = admin_client.get(reverse("admin:cards_topupcard_changelist")).content.decode()

    assert card.masked_pin in html and card.pin not in html
    assert card.masked_pin.startswith("•••• ••••") and card.masked_pin.endswith(card.pin[-4:])


def test_a_view_pin_holder_reveals_one_pin_and_it_is_audited(client):
    card = TopUpCardFactory()
    client.force_login(pin_reader())

    listing = client.get(reverse("admin:cards_topupcard_changelist")).content.decode()
    response = client.post(reveal_url(card), HTTP_ACCEPT="application/json")

    assert "Reveal" in listing and reveal_url(card) in listing
    assert response.json() == {"serial": card.serial, "pin": pins.format_pin(card.pin)}
    assert "no-store" in response["Cache-Control"]
    event = CardEvent.objects.get(kind=CardEventKind.PIN_REVEALED)
    assert (event.card, event.actor.username, event.serial) == (card, "reader", card.serial)
    assert event.ip_address == "127.0.0.1"


def test_reveal_without_javascript_shows_a_page(client):
    card = TopUpCardFactory()
    client.force_login(pin_reader())

    response = client.post(reveal_url(card))

    assert pins.format_pin(card.pin) in response.content.decode()
    assert CardEvent.objects.filter(kind=CardEventKind.PIN_REVEALED).count() == 1


def test_without_view_pin_there_is_no_reveal_control_and_the_url_is_refused(client):
    card = TopUpCardFactory()
    client.force_login(operator())

    listing = client.get(reverse("admin:cards_topupcard_changelist")).content.decode()
    response = client.post(reveal_url(card), HTTP_ACCEPT="application/json")

    assert "card-pin__reveal" not in listing
    assert response.status_code == 403 and card.pin not in response.content.decode()
    assert not CardEvent.objects.exists()


def test_reveal_is_post_only(client):
    card = TopUpCardFactory()
    client.force_login(pin_reader())

    response = client.get(reveal_url(card))

    assert response.status_code == 404 and not CardEvent.objects.exists()


def test_the_card_page_shows_its_history(admin_client, subscriber):
    result = card_batch_generate(
        series="5",
        quantity=1,
        amount="9",
        currency="USD",
        pin_length=12,
        reseller=None,
        expires_at=timezone.now() + dt.timedelta(days=3),
    )
    card = result.batch.cards.get()
    CardEventFactory(card=card, kind=CardEventKind.BLOCKED, changes={"field": "blocked"})
    CardEventFactory(kind=CardEventKind.BLOCKED)  # another card's

    response = admin_client.get(reverse("admin:cards_topupcard_change", args=[card.pk]))

    history = list(response.context["card_history"])
    assert [e.kind for e in history] == [CardEventKind.BLOCKED, CardEventKind.GENERATED]
    html = response.content.decode()
    assert "History" in html and "Batch generated" in html and "Reveal PIN" in html


def test_the_batch_page_shows_parameters_and_live_figures(admin_client, subscriber):
    result = card_batch_generate(
        series="6",
        quantity=5,
        amount="10",
        currency="USD",
        pin_length=12,
        reseller=subscriber.reseller,
        expires_at=timezone.now() + dt.timedelta(days=3),
    )
    batch = result.batch
    cards = list(batch.cards.order_by("number"))
    cards[0].activated_at, cards[0].activated_by = timezone.now(), subscriber
    cards[0].save()
    cards[1].blocked = True
    cards[1].save()
    cards[2].expires_at = timezone.now() - dt.timedelta(seconds=1)
    cards[2].save()
    cards[4].delete()

    response = admin_client.get(reverse("admin:cards_cardbatch_change", args=[batch.pk]))

    figures = response.context["figures"]
    assert (figures["new"], figures["activated"], figures["blocked"], figures["expired"]) == (
        1,
        1,
        1,
        1,
    )
    assert figures["deleted"] == 1 and figures["outstanding"] == Decimal("10.00")
    html = response.content.decode()
    assert "6-000000001 … 6-000000005" in html and "Reseller 1" in html
    assert f"?batch={batch.pk}" in html


def test_batches_cannot_be_added_edited_or_deleted(admin_client):
    from tests.factories import CardBatchFactory

    batch = CardBatchFactory()
    before = snapshot(type(batch))

    assert admin_client.get(reverse("admin:cards_cardbatch_add")).status_code == 403
    assert (
        admin_client.post(
            reverse("admin:cards_cardbatch_change", args=[batch.pk]), {"quantity": 9}
        ).status_code
        == 403
    )
    assert (
        admin_client.post(
            reverse("admin:cards_cardbatch_delete", args=[batch.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert snapshot(type(batch)) == before


def test_events_are_listed_searchable_by_exact_serial_and_read_only(admin_client):
    event = CardEventFactory(kind=CardEventKind.BLOCKED, changes={"field": "blocked", "new": True})
    CardEventFactory(kind=CardEventKind.EDITED)
    url = reverse("admin:cards_cardevent_changelist")

    listing = admin_client.get(url).content.decode()
    searched = admin_client.get(url, {"q": event.serial})
    by_kind = admin_client.get(url, {"kind__exact": "blocked"})

    assert "Blocked" in listing and "field: blocked" in listing
    assert list(searched.context["cl"].result_list) == [event]
    assert list(by_kind.context["cl"].result_list) == [event]
    before = snapshot(CardEvent)
    change = reverse("admin:cards_cardevent_change", args=[event.pk])
    assert admin_client.post(change, {"kind": "edited"}).status_code == 403
    delete = reverse("admin:cards_cardevent_delete", args=[event.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert snapshot(CardEvent) == before


def test_staff_with_only_event_view_permission_reads_events(client):
    CardEventFactory()
    user = operator("view_cardevent", username="auditor")
    user.user_permissions.add(Permission.objects.get(codename="view_cardevent"))
    client.force_login(user)

    assert client.get(reverse("admin:cards_cardevent_changelist")).status_code == 200


def test_view_pin_alone_does_not_open_cards(client):
    card = TopUpCardFactory()
    client.force_login(operator("view_pin", username="pins-only"))

    response = client.post(reveal_url(card), HTTP_ACCEPT="application/json")

    assert response.status_code == 403 and not CardEvent.objects.exists()
