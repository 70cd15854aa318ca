import base64
import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.utils import timezone

from tests.factories import (
    ApiClientFactory,
    BalanceFactory,
    BalanceIntervalFactory,
    BalanceTemplateFactory,
    GroupWalletFactory,
    UserFactory,
    WalletFactory,
)
from wallets.models import (
    Balance,
    BalanceEvent,
    BalanceInterval,
    BalanceKind,
    ExternalVoucher,
    IdempotencyKey,
    LedgerEntry,
    LedgerKind,
    VoucherMode,
)
from wallets.services.ledger import balance_apply


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    """Throttling counts live in the cache: each test starts from zero."""
    cache.clear()
    yield
    cache.clear()


def basic_auth(username: str, password: str = "secret") -> dict:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def make_client_user(mode=VoucherMode.CARD, perms=("topup_balance", "adjust_balance"), **kwargs):
    user = UserFactory(**kwargs)
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    ApiClientFactory(user=user, voucher_mode=mode)
    return user


@pytest.fixture
def card_client(db):
    return make_client_user(VoucherMode.CARD, username="partner-test")


@pytest.fixture
def external_client(db):
    return make_client_user(VoucherMode.EXTERNAL, username="vms-test")


# --- Builders shared by the service and API tests


DAY = dt.timedelta(days=1)


def make_balance(
    kind=BalanceKind.SIMPLE,
    *,
    precision=2,
    private=False,
    end_adjust=True,
    currency="USD",
    start_days=-10,
    end_days=None,
    parent=None,
    wallet=None,
    group=False,
    amount=None,
    **extra,
):
    """A balance `start_days`/`end_days` from now; periodic ones get three 30-day intervals,
    the middle one current, and `amount` lands in the current interval."""
    now = timezone.now()
    template = BalanceTemplateFactory(
        kind=kind,
        precision=precision,
        is_private=private,
        end_adjust_allowed=end_adjust,
        currency=currency,
    )
    if wallet is None:
        wallet = GroupWalletFactory() if group else WalletFactory()
    if kind == BalanceKind.PERIODIC and end_days is None:
        start_days, end_days = -35, 55
    balance = BalanceFactory(
        wallet=wallet,
        template=template,
        start_time=now + start_days * DAY,
        end_time=None if end_days is None else now + end_days * DAY,
        parent=parent,
        **extra,
    )
    current = None
    if kind == BalanceKind.PERIODIC:
        for offset in (-35, -5, 25):
            interval = BalanceIntervalFactory(
                balance=balance, start_time=now + offset * DAY, end_time=now + (offset + 30) * DAY
            )
            if offset == -5:
                current = interval
    if amount:
        balance_apply(
            balance_id=balance.pk,
            amount=Decimal(amount),
            kind=LedgerKind.OPENING,
            interval_id=current.pk if current else None,
        )
        balance.refresh_from_db()
    return balance


def snapshot():
    """Everything a wallet request may change: compare before and after a failure."""
    return {
        "balances": list(
            Balance.objects.order_by("pk").values_list("pk", "amount", "start_time", "end_time")
        ),
        "intervals": list(
            BalanceInterval.objects.order_by("pk").values_list(
                "pk", "amount", "start_time", "end_time"
            )
        ),
        "ledger": LedgerEntry.objects.count(),
        "events": BalanceEvent.objects.count(),
        "vouchers": ExternalVoucher.objects.count(),
        "keys": IdempotencyKey.objects.count(),
    }
