"""A staff user limited to one reseller, given every permission of the subscriber and wallet
sections, still reaches only that reseller's subscribers, subscriptions, wallets, balances and
history, and none of the sections that belong to every reseller (users, staff links, API
clients, templates, groups)."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from subscribers.models import Subscriber, Subscription
from tests.factories import (
    AccessNumberFactory,
    ApiClientFactory,
    BalanceFactory,
    ResellerFactory,
    StaffResellerFactory,
    SubscriberFactory,
    SubscriptionFactory,
    UserFactory,
    WalletFactory,
)
from wallets.models import Balance, BalanceEvent, ExternalVoucher, LedgerEntry
from wallets.services.topup import balance_topup_external

pytestmark = pytest.mark.django_db

SCOPED_SECTIONS = [
    ("subscribers", "reseller"),
    ("subscribers", "subscriber"),
    ("subscribers", "subscription"),
    ("wallets", "wallet"),
    ("wallets", "balance"),
    ("wallets", "ledgerentry"),
    ("wallets", "balanceevent"),
    ("wallets", "externalvoucher"),
]
CLOSED_SECTIONS = [
    ("subscribers", "staffreseller"),
    ("subscribers", "group"),
    ("wallets", "apiclient"),
    ("wallets", "balancetemplate"),
    ("auth", "user"),
    ("auth", "group"),
]


class World:
    def __init__(self):
        self.mine, self.theirs = ResellerFactory(name="Mine"), ResellerFactory(name="Theirs")
        self.balances = {}
        for name, reseller in (("mine", self.mine), ("theirs", self.theirs)):
            subscriber = SubscriberFactory(name=f"Subscriber of {name}", reseller=reseller)
            subscription = SubscriptionFactory(subscriber=subscriber, external_id=f"ext-{name}")
            AccessNumberFactory(subscription=subscription, number=f"55500{len(name)}")
            balance = BalanceFactory(wallet=WalletFactory(subscription=subscription))
            client = ApiClientFactory(user=UserFactory(username=f"api-{name}"))
            balance_topup_external(
                client=client, balance=balance, amount=Decimal("5.00"), voucher=f"REF-{name}"
            )
            self.balances[name] = balance
        self.staff = UserFactory(username="scoped", is_staff=True)
        self.staff.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label__in=["subscribers", "wallets", "auth"]
            )
        )
        StaffResellerFactory(user=self.staff, reseller=self.mine)

    def row(self, model, name):
        balance = self.balances[name]
        subscription = balance.wallet.subscription
        return {
            "reseller": subscription.subscriber.reseller,
            "subscriber": subscription.subscriber,
            "subscription": subscription,
            "wallet": balance.wallet,
            "balance": balance,
            "ledgerentry": LedgerEntry.objects.get(balance=balance),
            "balanceevent": BalanceEvent.objects.get(balance=balance),
            "externalvoucher": ExternalVoucher.objects.get(balance=balance),
        }[model]


@pytest.fixture
def world(client):
    world = World()
    client.force_login(world.staff)
    return world


@pytest.mark.parametrize(("app", "model"), SCOPED_SECTIONS)
def test_lists_and_pages_hold_only_the_staff_users_reseller(client, world, app, model):
    listing = client.get(reverse(f"admin:{app}_{model}_changelist"))
    mine, theirs = world.row(model, "mine"), world.row(model, "theirs")

    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [mine]
    assert client.get(reverse(f"admin:{app}_{model}_change", args=[mine.pk])).status_code == 200
    other = client.get(reverse(f"admin:{app}_{model}_change", args=[theirs.pk]))
    assert other.status_code == 302 and other.url == reverse("admin:index")  # "doesn't exist"


@pytest.mark.parametrize(("app", "model"), CLOSED_SECTIONS)
def test_sections_of_every_reseller_are_closed_whatever_the_permissions(client, world, app, model):
    assert client.get(reverse(f"admin:{app}_{model}_changelist")).status_code == 403
    assert client.get(reverse(f"admin:{app}_{model}_add")).status_code == 403
    index = client.get(reverse("admin:index")).content.decode()
    assert f'href="/admin/{app}/{model}/"' not in index
    assert 'href="/admin/subscribers/subscriber/"' in index  # the open ones are still there


def test_a_scoped_user_cannot_make_themselves_a_superuser(client, world):
    url = reverse("admin:auth_user_change", args=[world.staff.pk])
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    form = client.get(url).context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if value in (None, False) or field.disabled:
            continue
        if isinstance(value, list):
            data[name] = value
        elif hasattr(value, "strftime"):
            data[f"{name}_0"], data[f"{name}_1"] = value.strftime("%Y-%m-%d %H:%M:%S").split()
        else:
            data[name] = "on" if value is True else value
    data["is_superuser"] = "on"
    client.force_login(world.staff)

    client.post(url, data)

    world.staff.refresh_from_db()
    assert not world.staff.is_superuser


def test_deleting_another_resellers_subscriber_is_refused(client, world):
    theirs = SubscriberFactory(name="Unused subscriber of theirs", reseller=world.theirs)

    client.post(reverse("admin:subscribers_subscriber_delete", args=[theirs.pk]), {"post": "yes"})

    assert Subscriber.objects.filter(pk=theirs.pk).exists()


def test_forms_offer_only_the_staff_users_own_rows(client, world):
    theirs = world.balances["theirs"]
    before = (Subscription.objects.count(), Balance.objects.count(), LedgerEntry.objects.count())

    subscription = client.post(
        reverse("admin:subscribers_subscription_add"),
        {
            "subscriber": theirs.wallet.subscription.subscriber_id,
            "external_id": "sneaky",
            "access_numbers-TOTAL_FORMS": "0",
            "access_numbers-INITIAL_FORMS": "0",
        },
    )
    balance = client.post(
        reverse("admin:wallets_balance_add"),
        {
            "wallet": theirs.wallet_id,
            "template": theirs.template_id,
            "resource_id": "99",
            "start_time_0": "2026-01-01",
            "start_time_1": "00:00:00",
            "intervals-TOTAL_FORMS": "0",
            "intervals-INITIAL_FORMS": "0",
        },
    )

    assert subscription.status_code == balance.status_code == 200  # the form again, with errors
    assert "subscriber" in subscription.context["adminform"].form.errors
    assert "wallet" in balance.context["adminform"].form.errors
    assert (Subscription.objects.count(), Balance.objects.count(), LedgerEntry.objects.count()) == (
        before
    )


def test_an_operator_without_a_reseller_still_sees_everything(client, world):
    operator = UserFactory(username="operator", is_staff=True)
    operator.user_permissions.add(*world.staff.user_permissions.all())
    client.force_login(operator)

    listing = client.get(reverse("admin:wallets_balance_changelist"))

    assert listing.context["cl"].result_count == 2
    assert client.get(reverse("admin:wallets_apiclient_changelist")).status_code == 200
