from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from cards import pins
from cards.models import TopUpCard
from subscribers.models import Subscriber
from wallets.models import ApiClient, Balance, BalanceKind, VoucherMode

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_builds_the_documented_demo_and_is_idempotent():
    first = seed()
    counts = (TopUpCard.objects.count(), Balance.objects.count(), Subscriber.objects.count())
    second = seed()

    assert (
        TopUpCard.objects.count(),
        Balance.objects.count(),
        Subscriber.objects.count(),
    ) == counts
    assert counts[0] == 53
    rose = Subscriber.objects.get(name="Rose Orig")
    assert rose.user.check_password("rose") and rose.user.has_perm("cards.redeem_card")
    main = Balance.objects.get(
        wallet__subscription__access_numbers__number="5555555555", resource_id=12
    )
    assert main.is_main and main.template.kind == BalanceKind.SIMPLE
    assert (main.template.currency, main.template.precision) == ("USD", 2)
    assert main.wallet.subscription.external_id == "rose-001"
    assert main.amount == Decimal("15.00")  # the screenshot's series-1 card, redeemed by Rose
    kinds = set(main.wallet.balances.values_list("template__kind", flat=True))
    assert kinds == {
        BalanceKind.SIMPLE,
        BalanceKind.PERIODIC,
        BalanceKind.VIRTUAL,
        BalanceKind.METER,
    }
    virtual = main.wallet.balances.get(template__kind=BalanceKind.VIRTUAL)
    assert virtual.parent is not None and virtual.parent.wallet.group is not None
    screenshot = {c.serial: c for c in TopUpCard.objects.filter(series__in=["1", "2", "3"])}
    assert set(screenshot) == {"1-005568053", "2-006448435", "3-004206576"}
    assert screenshot["1-005568053"].activated_by == rose
    assert screenshot["3-004206576"].amount == Decimal("8.00")
    assert ApiClient.objects.get(user__username="partner").voucher_mode == VoucherMode.CARD
    assert ApiClient.objects.get(user__username="vms").voucher_mode == VoucherMode.EXTERNAL
    assert "Token " in second and "exists already" in second
    # The 50 PINs of series 4 are printed once, on the first run only, and they work.
    printed = [line.split() for line in first.splitlines() if line.strip().startswith("4-")]
    assert len(printed) == 50
    pin = "".join(printed[0][1:])
    card = TopUpCard.objects.get(pin_digest=pins.pin_digest(pin))
    assert card.serial == printed[0][0] and card.amount == Decimal("25.00")
    assert "4-000000001" not in second


def test_seed_demo_leaves_the_ledger_balanced():
    seed()
    call_command("check_ledger", stdout=StringIO())
