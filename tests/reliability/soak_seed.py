"""Load the soak database (not a test module): `python -m tests.reliability.soak_seed N`.

Creates four subscribers with a main USD balance (two panel users allowed to redeem, one
topped up by a card-mode API client, one by an external-mode client), logged-in panel
sessions, and two batches of N cards (one for the panel, one for the REST API). Prints JSON.
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
from tests.factories import BalanceFactory, ResellerFactory, SubscriberFactory  # noqa: E402
from tests.panel.conftest import grant_redeem  # noqa: E402
from tests.wallets.conftest import make_client_user  # noqa: E402
from wallets.models import VoucherMode  # noqa: E402


def main() -> None:
    quantity = int(sys.argv[1])
    reseller = ResellerFactory(name="Soak reseller")
    subscribers = []
    for n in range(4):
        subscriber = SubscriberFactory(name=f"Soak {n}", reseller=reseller)
        grant_redeem(subscriber.user)
        balance = BalanceFactory(
            wallet__subscription__subscriber=subscriber, resource_id=12, is_main=True
        )
        client = Client()
        client.force_login(subscriber.user)
        subscribers.append(
            {
                "balance_id": balance.pk,
                "external_id": balance.wallet.subscription.external_id,
                "session": client.cookies["sessionid"].value,
            }
        )
    make_client_user(VoucherMode.CARD, username="partner")
    make_client_user(VoucherMode.EXTERNAL, username="vms")
    batches = {}
    for name, series in (("panel", "61"), ("rest", "62")):
        result = card_batch_generate(
            series=series,
            quantity=quantity,
            amount="5.00",
            currency="USD",
            pin_length=12,
            reseller=reseller,
            expires_at=timezone.now() + dt.timedelta(days=30),
        )
        first = result.batch.first_number
        batches[name] = [
            {"pin": pin, "serial": f"{series}-{first + offset:09d}"}
            for offset, pin in enumerate(result.pins)
        ]
    print(json.dumps({"subscribers": subscribers, "cards": batches}))


if __name__ == "__main__":
    main()
