"""The pieces of `make run` on its SQLite file, for tests/local/test_sqlite_busy.py.

`python -m tests.local.sqlite_app seed` migrates the file and prints what a test needs (an
operator's session, a subscriber's session and a card PIN, an API client, a running job) as
JSON. `python -m tests.local.sqlite_app hold` starts a real card generation on its own
connection and, once 10,000 cards are written in its still-open transaction, prints HELD and
waits for a line on stdin before finishing it: a long write, held for as long as a test needs.
"""

import datetime as dt
import json
import sys

import django

HOLD_AT = 15_000  # progress is reported every 5,000 cards: 10,000 are written by then
HOLD_QUANTITY = 25_000


def seed() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)

    from django.test import Client
    from django.utils import timezone

    from cards import pins
    from cards.models import CardJob
    from cards.models.jobs import CardJobStatus
    from tests.factories import (
        BalanceFactory,
        SubscriberFactory,
        TopUpCardFactory,
        UserFactory,
        WalletFactory,
    )
    from tests.panel.conftest import grant_redeem
    from tests.wallets.conftest import make_client_user
    from wallets.models import VoucherMode

    operator = UserFactory(username="operator", is_staff=True, is_superuser=True)
    subscriber = SubscriberFactory(name="Rose Orig")
    grant_redeem(subscriber.user)
    wallet = WalletFactory(subscription__subscriber=subscriber)
    balance = BalanceFactory(wallet=wallet, resource_id=12, is_main=True)
    pin = pins.generate_pin(12)
    TopUpCardFactory(pin=pin, reseller=subscriber.reseller, series="1")
    make_client_user(VoucherMode.EXTERNAL, username="vms-local")
    now = timezone.now()
    job = CardJob.objects.create(
        params={
            "series": "7",
            "quantity": HOLD_QUANTITY,
            "amount": "5.00",
            "currency": "USD",
            "pin_length": 12,
            "reseller_id": None,
            "expires_at": (now + dt.timedelta(days=365)).isoformat(),
        },
        total=HOLD_QUANTITY,
        status=CardJobStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        requested_by=operator,
    )
    sessions = {}
    for name, user in (("operator", operator), ("subscriber", subscriber.user)):
        client = Client()
        client.force_login(user)
        sessions[name] = client.cookies["sessionid"].value
    print(
        json.dumps(
            {
                "sessions": sessions,
                "pin": pin,
                "balance_id": balance.pk,
                "wallet_ref": f"ExternalId+{wallet.subscription.external_id}",
                "api_user": "vms-local",
                "job_id": job.pk,
            }
        )
    )


def hold() -> None:
    from django.utils import timezone

    from cards.services.generation import card_batch_generate

    def progress(done: int, total: int) -> None:
        if done == HOLD_AT:
            print("HELD", flush=True)
            sys.stdin.readline()

    result = card_batch_generate(
        series="7",
        quantity=HOLD_QUANTITY,
        amount="5.00",
        currency="USD",
        pin_length=12,
        reseller=None,
        expires_at=timezone.now() + dt.timedelta(days=365),
        progress=progress,
    )
    print(f"DONE {result.batch.quantity}", flush=True)


if __name__ == "__main__":
    django.setup()
    {"seed": seed, "hold": hold}[sys.argv[1]]()
