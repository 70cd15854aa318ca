import pytest
from django.contrib.auth.models import Permission

from tests.factories import TopUpCardFactory


def grant_redeem(user):
    user.user_permissions.add(Permission.objects.get(codename="redeem_card"))


@pytest.fixture
def panel_user(subscriber, main_balance):
    """Rose: linked to a subscriber with a main USD balance, allowed to redeem."""
    grant_redeem(subscriber.user)
    return subscriber.user


@pytest.fixture
def rose(client, panel_user):
    client.force_login(panel_user)
    return client


@pytest.fixture
def card(subscriber):
    return TopUpCardFactory(reseller=subscriber.reseller)
