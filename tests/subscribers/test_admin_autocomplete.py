"""Related rows are picked by searching (autocomplete), not by typing raw ids (issue 14), and the
search endpoint never offers a reseller's staff a row of another reseller: it answers for any
foreign key of any model, not only the ones a form shows, so every one is tried."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models
from django.urls import reverse

from subscribers.models import Subscriber
from tests.factories import GroupFactory, UserFactory
from tests.subscribers.test_admin_scoping import World
from wallets.models import Balance, Wallet

pytestmark = pytest.mark.django_db

AUTOCOMPLETE = "/admin/autocomplete/"
# (section, model, field): every related-row choice on an admin form that can grow large.
AUTOCOMPLETED = [
    ("subscribers", "subscriber", "user"),
    ("subscribers", "subscriber", "reseller"),
    ("subscribers", "staffreseller", "user"),
    ("subscribers", "staffreseller", "reseller"),
    ("subscribers", "subscription", "subscriber"),
    ("subscribers", "subscription", "group"),
    ("wallets", "wallet", "subscription"),
    ("wallets", "wallet", "group"),
    ("wallets", "balance", "wallet"),
    ("wallets", "balance", "parent"),
    ("wallets", "apiclient", "user"),
]


def search(client, app, model, field, term=""):
    params = {"app_label": app, "model_name": model, "field_name": field, "term": term}
    return client.get(AUTOCOMPLETE, params)


def offered(response) -> list[str]:
    return [row["text"] for row in response.json()["results"]]


@pytest.fixture
def root(client):
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


@pytest.mark.parametrize(("app", "model", "field"), AUTOCOMPLETED)
def test_add_forms_search_related_rows_instead_of_asking_for_raw_ids(
    client, root, app, model, field
):
    World()
    GroupFactory(name="Family plan")
    page = client.get(reverse(f"admin:{app}_{model}_add")).content.decode()

    assert "vForeignKeyRawIdAdminField" not in page
    assert f'data-field-name="{field}"' in page and "admin-autocomplete" in page
    response = search(client, app, model, field)
    assert response.status_code == 200 and offered(response)


def _every_foreign_key():
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if isinstance(field, models.ForeignKey) and field.related_model in admin.site._registry:
                yield model._meta.app_label, model._meta.model_name, field.name


def test_a_resellers_staff_is_never_offered_another_resellers_row(client):
    """Whatever foreign key the search is asked for: refused, or only their own reseller's."""
    world = World()
    client.force_login(world.staff)
    answered = 0

    for app, model, field in _every_foreign_key():
        response = search(client, app, model, field)
        if response.status_code != 200:
            assert response.status_code in (403, 404), (app, model, field)
            continue
        answered += 1
        texts = offered(response)
        assert not [t for t in texts if "theirs" in t.lower()], (app, model, field, texts)

    assert answered >= 6  # the scoped sections answer, so the loop proved something


@pytest.mark.parametrize(
    ("app", "model", "field", "expected"),
    [
        ("subscribers", "subscriber", "reseller", ["Mine"]),
        ("subscribers", "subscription", "subscriber", ["Subscriber of mine"]),
        ("wallets", "wallet", "subscription", ["ext-mine (Subscriber of mine)"]),
        ("wallets", "balance", "wallet", ["Wallet of ext-mine (Subscriber of mine)"]),
    ],
)
def test_a_resellers_staff_is_offered_their_own_rows(client, app, model, field, expected):
    world = World()
    client.force_login(world.staff)

    assert offered(search(client, app, model, field)) == expected
    assert offered(search(client, app, model, field, term="theirs")) == []


@pytest.mark.parametrize(
    ("app", "model", "field"),
    [
        ("subscribers", "subscriber", "user"),
        ("subscribers", "staffreseller", "user"),
        ("wallets", "apiclient", "user"),
        ("wallets", "wallet", "group"),
    ],
)
def test_sections_of_every_reseller_are_not_searchable_by_a_resellers_staff(
    client, app, model, field
):
    world = World()
    client.force_login(world.staff)

    assert search(client, app, model, field, term="api").status_code == 403


def test_a_resellers_staff_cannot_link_another_login_to_their_subscriber(client):
    world = World()
    client.force_login(world.staff)
    mine = Subscriber.objects.get(name="Subscriber of mine")
    theirs = Subscriber.objects.get(name="Subscriber of theirs")
    spare = UserFactory(username="spare")  # linked to nobody
    url = reverse("admin:subscribers_subscriber_change", args=[mine.pk])
    own_user = mine.user

    for intruder in (theirs.user, spare, world.staff):
        data = {"name": mine.name, "user": str(intruder.pk), "reseller": str(world.mine.pk)}
        response = client.post(url, data)
        assert response.status_code == 200
        assert list(response.context["adminform"].form.errors) == ["user"]
        mine.refresh_from_db()
        assert mine.user == own_user

    # Their own subscriber's login stays theirs to keep: the form saves.
    data = {"name": "Renamed", "user": str(own_user.pk), "reseller": str(world.mine.pk)}
    assert client.post(url, data).status_code == 302
    mine.refresh_from_db()
    assert (mine.name, mine.user) == ("Renamed", own_user)


def test_a_resellers_staff_cannot_put_a_balance_in_another_resellers_wallet(client):
    world = World()
    client.force_login(world.staff)
    theirs = world.balances["theirs"]
    before = Balance.objects.count()

    response = client.post(
        reverse("admin:wallets_balance_add"),
        {
            "wallet": str(theirs.wallet.pk),
            "resource_id": "77",
            "template": str(theirs.template.pk),
            "start_time_0": "2030-01-01",
            "start_time_1": "00:00:00",
            "parent": str(theirs.pk),
        },
    )

    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) >= {"wallet", "parent"}
    assert Balance.objects.count() == before
    assert Wallet.objects.filter(pk=theirs.wallet.pk).get().balances.count() == 1
    assert get_user_model().objects.filter(username="scoped").get().is_superuser is False
