"""A PIN reveal records the client's address, not the reverse proxy's (common.http.client_ip,
TRUSTED_PROXY_COUNT): the audit must say who saw a PIN from where."""

import pytest
from django.urls import reverse

from cards.models import CardEvent
from cards.models.events import CardEventKind
from tests.cards.admin_helpers import operator
from tests.factories import TopUpCardFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("proxies", "forwarded", "recorded"),
    [
        # nginx (deploy/nginx/) writes the address it saw; the client's own claim is left of it.
        (1, "198.51.100.9, 203.0.113.7", "203.0.113.7"),
        (1, "203.0.113.7", "203.0.113.7"),
        # Without a trusted proxy, X-Forwarded-For is whatever the client sent: ignored.
        (0, "203.0.113.7", "10.0.0.5"),
    ],
)
def test_a_reveal_behind_a_proxy_records_the_clients_address(
    client, settings, proxies, forwarded, recorded
):
    settings.TRUSTED_PROXY_COUNT = proxies
    card = TopUpCardFactory()
    client.force_login(operator("view_topupcard", "view_pin", username="reader"))

    response = client.post(
        reverse("admin:cards_topupcard_reveal_pin", args=[card.pk]),
        HTTP_ACCEPT="application/json",
        REMOTE_ADDR="10.0.0.5",
        HTTP_X_FORWARDED_FOR=forwarded,
    )

    assert response.status_code == 200
    event = CardEvent.objects.get(kind=CardEventKind.PIN_REVEALED)
    assert (event.card, event.ip_address) == (card, recorded)
