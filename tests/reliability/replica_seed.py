"""Load the replica test's primary (not a test module).

`python -m tests.reliability.replica_seed setup`: two operators (superusers) with logged-in admin
sessions, a reseller, a USD balance template, series 71; prints JSON.
`python -m tests.reliability.replica_seed batch SERIES N`: N more cards in SERIES, as another
operator's generation would write them (no cookie of the test's users knows about it).
"""

import datetime as dt
import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django  # noqa: E402

django.setup()

from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from cards.services.generation import card_batch_generate  # noqa: E402
from subscribers.models import Reseller  # noqa: E402
from tests.factories import BalanceTemplateFactory, ResellerFactory, UserFactory  # noqa: E402

RESELLER = "Replica reseller"
EXPIRES_IN = dt.timedelta(days=20)  # inside the "expiring within 30 days" window


def generate(series: str, quantity: int) -> None:
    card_batch_generate(
        series=series,
        quantity=quantity,
        amount="5.00",
        currency="USD",
        pin_length=12,
        reseller=Reseller.objects.get(name=RESELLER),
        expires_at=timezone.now() + EXPIRES_IN,
    )


def setup() -> dict:
    reseller = ResellerFactory(name=RESELLER)
    BalanceTemplateFactory(currency="USD")
    sessions = []
    for name in ("operator1", "operator2"):
        user = UserFactory(username=name, is_staff=True, is_superuser=True)
        client = Client()
        client.force_login(user)
        sessions.append(client.cookies["sessionid"].value)
    generate("71", 6)
    return {"sessions": sessions, "reseller_id": reseller.pk}


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        print(json.dumps(setup()))
    else:
        generate(sys.argv[2], int(sys.argv[3]))
