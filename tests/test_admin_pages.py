"""Every model is registered in the admin and its pages open for an operator."""

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse

pytestmark = pytest.mark.django_db

EXPECTED = {
    "subscribers": {"reseller", "subscriber", "subscription", "group", "staffreseller"},
    "wallets": {"wallet", "balancetemplate", "balance", "ledgerentry", "apiclient"},
    "cards": {"topupcard", "cardbatch", "cardevent"},
}


def test_every_model_is_registered():
    registered = {(m._meta.app_label, m._meta.model_name) for m in admin.site._registry}
    for app, models in EXPECTED.items():
        assert {(app, m) for m in models} <= registered


@pytest.mark.parametrize(
    ("app", "model"), [(app, model) for app, models in EXPECTED.items() for model in models]
)
def test_changelist_add_and_change_pages_open(admin_client, app, model):
    call_command("seed_demo", stdout=open("/dev/null", "w"))

    assert admin_client.get(reverse(f"admin:{app}_{model}_changelist")).status_code == 200
    model_admin = next(
        ma
        for m, ma in admin.site._registry.items()
        if (m._meta.app_label, m._meta.model_name) == (app, model)
    )
    obj = model_admin.model.objects.first()
    if obj is not None:
        url = reverse(f"admin:{app}_{model}_change", args=[obj.pk])
        assert admin_client.get(url).status_code == 200


def test_operator_creates_a_reseller_from_the_admin(admin_client):
    from subscribers.models import Reseller

    response = admin_client.post(reverse("admin:subscribers_reseller_add"), {"name": "Reseller 9"})

    assert response.status_code == 302
    assert Reseller.objects.filter(name="Reseller 9").exists()


def test_ledger_entries_cannot_be_edited_in_the_admin(admin_client):
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    from wallets.models import LedgerEntry

    entry = LedgerEntry.objects.first()
    response = admin_client.post(
        reverse("admin:wallets_ledgerentry_change", args=[entry.pk]), {"amount": "1000"}
    )

    assert response.status_code == 403
    entry.refresh_from_db()
    assert entry.amount != 1000
