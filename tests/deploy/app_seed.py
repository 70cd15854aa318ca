"""Prepare the throwaway SQLite database of a gunicorn under test (tests/deploy/servers.py):
migrate, then one external-mode API client and one 5.00 balance; print them as JSON."""

import json

import django


def main() -> None:
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from tests.wallets.conftest import make_balance, make_client_user
    from wallets.models import VoucherMode

    user = make_client_user(VoucherMode.EXTERNAL, username="vms-deploy")
    balance = make_balance(amount="5.00")
    print(
        json.dumps(
            {
                "username": user.username,
                "ref": f"ExternalId+{balance.wallet.subscription.external_id}",
                "resource_id": balance.resource_id,
            }
        )
    )


if __name__ == "__main__":
    main()
