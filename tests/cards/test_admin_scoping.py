"""A staff user linked to a reseller sees, searches, edits and deletes only that reseller's cards,
and cannot reach another reseller's cards by URL."""

import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from cards.models import CardBatch, CardEvent, TopUpCard
from cards.selectors import card_list
from subscribers.models import StaffReseller
from tests.cards.admin_helpers import CARD_PERMS, operator, snapshot
from tests.factories import CardBatchFactory, CardEventFactory, ResellerFactory, TopUpCardFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(client):
    mine, theirs = ResellerFactory(name="Mine"), ResellerFactory(name="Theirs")
    user = operator(*CARD_PERMS, "view_pin", "view_cardevent", username="scoped")
    StaffReseller.objects.create(user=user, reseller=mine)
    client.force_login(user)
    my_batch = CardBatchFactory(reseller=mine)
    their_batch = CardBatchFactory(reseller=theirs)
    return {
        "user": user,
        "mine": mine,
        "theirs": theirs,
        "my_card": TopUpCardFactory(series="1", number=1, reseller=mine, batch=my_batch),
        "their_card": TopUpCardFactory(series="1", number=2, reseller=theirs, batch=their_batch),
        "unowned": TopUpCardFactory(series="1", number=3, reseller=None),
        "my_batch": my_batch,
        "their_batch": their_batch,
    }


def test_the_list_shows_only_my_cards_and_only_my_company(client, world):
    response = client.get(reverse("admin:cards_topupcard_changelist"))

    html = response.content.decode()
    assert "1-000000001" in html and "1-000000002" not in html and "1-000000003" not in html
    assert "Rows 1 – 1 of 1" in html
    choices = [str(r) for r in response.context["cl"].search.form.fields["reseller"].queryset]
    assert choices == ["Mine"]


def test_searching_for_another_company_is_refused(client, world):
    response = client.get(
        reverse("admin:cards_topupcard_changelist"), {"reseller": world["theirs"].pk}
    )

    assert "Select a valid choice" in response.content.decode()
    assert list(response.context["cl"].result_list) == []


def test_a_pin_search_does_not_find_another_resellers_card(client, world):
    post = client.post(reverse("admin:cards_topupcard_search"), {"pin": world["their_card"].pin})

    response = client.get(post["Location"])

    assert list(response.context["cl"].result_list) == []


@pytest.mark.parametrize("name", ["their_card", "unowned"])
def test_other_cards_cannot_be_reached_by_url(client, world, name):
    card = world[name]
    before = snapshot(TopUpCard), snapshot(CardEvent)

    change = client.get(reverse("admin:cards_topupcard_change", args=[card.pk]))
    post = client.post(
        reverse("admin:cards_topupcard_change", args=[card.pk]),
        {"reseller": world["mine"].pk, "blocked": "on"},
    )
    delete = client.post(reverse("admin:cards_topupcard_delete", args=[card.pk]), {"post": "yes"})
    reveal = client.post(
        reverse("admin:cards_topupcard_reveal_pin", args=[card.pk]), HTTP_ACCEPT="application/json"
    )

    assert change.status_code == 302 and card.serial not in change.content.decode()
    assert post.status_code == 302
    assert delete.status_code == 302
    assert reveal.status_code == 404 and card.pin not in reveal.content.decode()
    assert (snapshot(TopUpCard), snapshot(CardEvent)) == before


def test_my_card_is_reachable(client, world):
    card = world["my_card"]

    assert client.get(reverse("admin:cards_topupcard_change", args=[card.pk])).status_code == 200
    reveal = client.post(
        reverse("admin:cards_topupcard_reveal_pin", args=[card.pk]), HTTP_ACCEPT="application/json"
    )
    assert reveal.status_code == 200


def test_mass_edit_and_delete_all_touch_only_my_cards(client, world):
    mass_edit = reverse("admin:cards_topupcard_mass_edit")
    client.post(
        mass_edit,
        {
            "expires_action": "preserve",
            "reseller_action": "preserve",
            "block_action": "block",
            "_confirm": "1",
        },
    )
    assert set(TopUpCard.objects.filter(blocked=True).values_list("pk", flat=True)) == {
        world["my_card"].pk
    }

    page = client.get(reverse("admin:cards_topupcard_delete_all"))
    assert page.context["count"] == 1
    client.post(
        reverse("admin:cards_topupcard_delete_all"), {"expected_count": "1", "_confirm": "1"}
    )

    assert set(TopUpCard.objects.values_list("pk", flat=True)) == {
        world["their_card"].pk,
        world["unowned"].pk,
    }


def test_mass_edit_cannot_hand_my_cards_to_another_company(client, world):
    before = snapshot(TopUpCard)

    response = client.post(
        reverse("admin:cards_topupcard_mass_edit"),
        {
            "expires_action": "preserve",
            "reseller_action": "set",
            "reseller": world["theirs"].pk,
            "block_action": "preserve",
            "_confirm": "1",
        },
    )

    assert "Select a valid choice" in " ".join(response.context["form"].errors["reseller"])
    assert snapshot(TopUpCard) == before


def test_delete_marks_on_other_cards_are_refused(client, world):
    before = snapshot(TopUpCard)

    response = client.post(
        reverse("admin:cards_topupcard_mass_edit"),
        {
            "expires_action": "preserve",
            "reseller_action": "preserve",
            "block_action": "preserve",
            "delete": [world["their_card"].pk],
            "_confirm": "1",
        },
    )

    assert response.context["form"].errors["delete"]
    assert snapshot(TopUpCard) == before


def test_generate_makes_cards_only_for_my_company(client, world):
    url = reverse("admin:cards_topupcard_generate")
    data = {
        "amount": "5",
        "currency": "USD",
        "quantity": "2",
        "series": "9",
        "pin_length": "12",
        "expires_at": (timezone.now() + dt.timedelta(days=9)).strftime("%Y-%m-%d %H:%M:%S"),
    }

    refused = client.post(url, {**data, "reseller": world["theirs"].pk})
    missing = client.post(url, {**data, "reseller": ""})
    assert not TopUpCard.objects.filter(series="9").exists()
    assert refused.context["form"].errors["reseller"] and missing.context["form"].errors["reseller"]

    client.post(url, {**data, "reseller": world["mine"].pk})
    assert set(TopUpCard.objects.filter(series="9").values_list("reseller", flat=True)) == {
        world["mine"].pk
    }


def test_batches_and_events_of_other_resellers_are_hidden(client, world):
    CardEventFactory(card=world["their_card"])
    mine = CardEventFactory(card=world["my_card"])

    batch_list = client.get(reverse("admin:cards_cardbatch_changelist"))
    their_batch = client.get(
        reverse("admin:cards_cardbatch_change", args=[world["their_batch"].pk])
    )
    events = client.get(reverse("admin:cards_cardevent_changelist"))
    download = client.post(
        reverse("admin:cards_cardbatch_download", args=[world["their_batch"].pk])
    )

    assert list(batch_list.context["cl"].result_list) == [world["my_batch"]]
    assert their_batch.status_code == 302
    assert list(events.context["cl"].result_list) == [mine]
    assert download.status_code == 404


def test_the_selector_scopes_for_the_export_too(world):
    assert list(card_list(filters={}, user=world["user"])) == [world["my_card"]]
    assert card_list(filters={}, user=None).count() == 3


def test_an_unscoped_operator_sees_every_card(admin_client, world):
    response = admin_client.get(reverse("admin:cards_topupcard_changelist"))

    assert response.context["cl"].result_count == 3
    assert CardBatch.objects.count() == 2
    assert Permission.objects.filter(codename="view_pin").exists()
