import pytest
from django.db import IntegrityError, transaction

from subscribers.models import AccessNumber
from tests.factories import (
    AccessNumberFactory,
    BalanceFactory,
    BalanceTemplateFactory,
    GroupFactory,
    SubscriptionFactory,
    WalletFactory,
)
from wallets.models import BalanceKind, Wallet

pytestmark = pytest.mark.django_db


def test_access_number_is_unique_across_subscriptions():
    AccessNumberFactory(number="5555555555")

    with pytest.raises(IntegrityError), transaction.atomic():
        AccessNumberFactory(number="5555555555")

    assert AccessNumber.objects.count() == 1


def test_access_number_must_be_digits():
    with pytest.raises(IntegrityError), transaction.atomic():
        AccessNumberFactory(number="555-CALL")


def test_wallet_belongs_to_exactly_one_of_subscription_or_group():
    subscription = SubscriptionFactory()
    group = GroupFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        Wallet.objects.create(subscription=subscription, group=group)
    with pytest.raises(IntegrityError), transaction.atomic():
        Wallet.objects.create()

    assert Wallet.objects.count() == 0


def test_resource_id_is_unique_in_a_wallet_but_not_across_wallets():
    wallet = WalletFactory()
    BalanceFactory(wallet=wallet, resource_id=12)
    BalanceFactory(resource_id=12)  # another wallet: fine

    with pytest.raises(IntegrityError), transaction.atomic():
        BalanceFactory(wallet=wallet, resource_id=12)


def test_only_one_main_balance_per_wallet():
    wallet = WalletFactory()
    BalanceFactory(wallet=wallet, is_main=True)

    with pytest.raises(IntegrityError), transaction.atomic():
        BalanceFactory(wallet=wallet, is_main=True)


def test_balance_amount_cannot_go_negative_even_by_sql():
    balance = BalanceFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        type(balance).objects.filter(pk=balance.pk).update(amount=-1)


@pytest.mark.parametrize("precision", [-1, 7])
def test_template_precision_is_0_to_6(precision):
    with pytest.raises(IntegrityError), transaction.atomic():
        BalanceTemplateFactory(precision=precision)


def test_periodic_template_needs_a_period_and_others_must_not_have_one():
    with pytest.raises(IntegrityError), transaction.atomic():
        BalanceTemplateFactory(kind=BalanceKind.PERIODIC, period=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        BalanceTemplateFactory(kind=BalanceKind.SIMPLE, period="P1D")
