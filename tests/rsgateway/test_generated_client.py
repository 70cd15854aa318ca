"""A client generated from the served /rsgateway/openapi.json, used as generated, tops up Rose.

openapi-python-client (pinned in the dev dependencies; it needs no network) generates a package
from the document a live server serves; the test imports it and, through its JSON binding only
(the generator does not support XML bodies: it skips the XML binding's writes, with a warning),
redeems a series-4 demo card onto Rose's main balance as the demo client `partner`, then reads
the balance back through the same client. docs/rest-api.md, "The OpenAPI document".
"""

import importlib
import subprocess
import sys
import urllib.request
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from cards.models import TopUpCard
from wallets.models import Balance, LedgerEntry, LedgerKind

pytestmark = pytest.mark.django_db(transaction=True)

PACKAGE = "topup_gateway_client"
# No post-generation hooks: the project's ruff is not the generator's business here.
CONFIG = "post_hooks: []\n"


def generate_client(document: bytes, where) -> tuple[object, str]:
    spec = where / "openapi.json"
    spec.write_bytes(document)
    config = where / "generator.yaml"
    config.write_text(CONFIG)
    run = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(where / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    sys.path.insert(0, str(where))
    try:
        importlib.invalidate_caches()
        return importlib.import_module(PACKAGE), run.stdout + run.stderr
    finally:
        sys.path.remove(str(where))


@pytest.fixture
def generated(live_server, tmp_path):
    with urllib.request.urlopen(f"{live_server.url}/rsgateway/openapi.json") as reply:  # noqa: S310
        document = reply.read()
    package, output = generate_client(document, tmp_path)
    yield package, output
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def rose_main() -> Balance:
    return Balance.objects.get(
        wallet__subscription__access_numbers__number="5555555555", resource_id=12
    )


def test_the_generated_client_tops_up_roses_balance_in_the_json_binding(live_server, generated):
    package, output = generated
    seeded = StringIO()
    call_command("seed_demo", stdout=seeded)
    lines = seeded.getvalue().splitlines()
    token = next(
        line.split("Token ")[1].split()[0] for line in lines if "API client partner" in line
    )
    serial, *pin_groups = next(line.split() for line in lines if line.strip().startswith("4-"))
    before = rose_main().amount

    client_module = importlib.import_module(f"{PACKAGE}.client")
    api = importlib.import_module(f"{PACKAGE}.api.json_binding")
    models = importlib.import_module(f"{PACKAGE}.models")
    client = client_module.AuthenticatedClient(
        base_url=live_server.url, token=token, prefix="Token", raise_on_unexpected_status=True
    )
    with client as client:
        topup = importlib.import_module(f"{api.__name__}.topup_balance_json").sync_detailed(
            owner=models.Owner.SUBSCRIPTION,
            ref="AccessNumber+5555555555",
            resource_id=12,
            client=client,
            body=models.MtxRequestSubscriberTopupBalance(
                field_="MtxRequestSubscriberTopupBalance",
                amount="25.00",
                voucher="".join(pin_groups),
            ),
            x_request_id="generated-client-1",
        )
        wallet = importlib.import_module(f"{api.__name__}.get_wallet_balance_json").sync(
            owner=models.Owner.SUBSCRIPTION,
            ref="AccessNumber+5555555555",
            resource_id=12,
            client=client,
        )

    assert "json_binding" not in output  # no warning about the JSON binding
    assert topup.status_code == 200, topup.content
    assert isinstance(topup.parsed, models.MtxResponse)
    assert (topup.parsed.result, topup.parsed.result_text) == (0, "OK")
    assert topup.headers["X-Request-Id"] == "generated-client-1"
    assert rose_main().amount == before + Decimal("25.00")
    entry = LedgerEntry.objects.get(request_id="generated-client-1")
    card = TopUpCard.objects.get(series="4", number=int(serial.split("-")[1]))
    assert (entry.kind, entry.amount, entry.voucher, entry.balance) == (
        LedgerKind.REDEMPTION,
        Decimal("25.00"),
        card.serial,
        rose_main(),
    )
    assert isinstance(wallet, models.MtxResponseWallet)
    (balance,) = wallet.balance_array
    assert (balance.resource_id, Decimal(balance.amount)) == (12, rose_main().amount)
    call_command("check_ledger", stdout=StringIO())
