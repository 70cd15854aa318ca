"""A hand-built fixture whose every report figure is computed by hand in the tests.

D is the report day (the end of last month, so the admin's "End of last month" link hits it) and
T = the first instant of D + 1: "as of D" is the state just before T. Amounts are distinct powers
of two (times ten) so a wrong sum cannot come out right by accident.

| card | reseller | cur | series | amount | created | expires | redeemed (channel) | other |
|------|----------|-----|--------|--------|---------|---------|--------------------|-------|
| c1   | R1 | USD | 100 | 10     | T-10d | T+30d | —                   | |
| c2   | R1 | USD | 100 | 20     | T-10d | T+200d| T-1s (panel)        | |
| c3   | R1 | USD | 100 | 40     | T-10d | T+200d| T exactly (rest)    | |
| c4   | R1 | USD | 100 | 80     | T-10d | T exactly | —               | |
| c5   | R1 | USD | 100 | 160    | T-10d | T-1s  | —                   | |
| c6   | R1 | USD | 100 | 320    | T     | T+30d | —                   | |
| c7   | R1 | USD | 100 | 640    | T-1s  | T+5d  | —                   | |
| c8   | R1 | USD | 100 | 1280   | T-10d | T+30d | —                   | blocked |
| c9   | R1 | USD | 100 | 2560   | T-10d | T+200d| T+1h (panel)        | reversed T+2h |
| c10  | R1 | USD | 100 | 5120   | T-10d | T+200d| T-2d (rest)         | reversed T-1d |
| c11  | R1 | USD | 200 | 3      | T-10d | T+60d | —                   | |
| c12  | R2 | USD | 100 | 7      | T-10d | T+3d  | —                   | |
| c13  | R1 | EUR | 300 | 5      | T-10d | T+100d| —                   | |
| c14  | —  | USD | 100 | 11     | T-10d | T+30d | —                   | |
| c15  | R1 | USD | 100 | 0.50   | T-10d | T-5d  | —                   | blocked |
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from reports.forms import end_of_previous_month
from reports.selectors.common import end_of_day
from tests.factories import (
    BalanceFactory,
    BalanceTemplateFactory,
    GroupWalletFactory,
    LedgerEntryFactory,
    ResellerFactory,
    StaffResellerFactory,
    SubscriberFactory,
    TopUpCardFactory,
    UserFactory,
    WalletFactory,
)
from wallets.models import Channel, LedgerKind

SECOND = dt.timedelta(seconds=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
REPORT_PERMISSIONS = [
    "view_liabilityreport",
    "view_redemptionreport",
    "view_breakagereport",
    "view_expiringreport",
    "view_balancereport",
    "view_rollforwardreport",
]


@dataclass
class Finance:
    day: dt.date
    T: dt.datetime
    r1: object
    r2: object
    cards: dict = field(default_factory=dict)
    balances: dict = field(default_factory=dict)


def build_finance(day: dt.date) -> Finance:
    T = end_of_day(day)
    r1 = ResellerFactory(name="Reseller 1")
    r2 = ResellerFactory(name="Reseller 2")
    f = Finance(day=day, T=T, r1=r1, r2=r2)

    main_usd = BalanceTemplateFactory(name="Main USD", currency="USD")
    group_usd = BalanceTemplateFactory(name="Group USD", currency="USD")
    data_mb = BalanceTemplateFactory(name="Data MB", currency="MB", precision=0)
    sub1 = SubscriberFactory(name="Rose", reseller=r1)
    sub2 = SubscriberFactory(name="Ivy", reseller=r2)
    wallet1 = WalletFactory(subscription__subscriber=sub1)
    wallet2 = WalletFactory(subscription__subscriber=sub2)
    b1 = BalanceFactory(wallet=wallet1, template=main_usd, is_main=True, amount=Decimal("100"))
    BalanceFactory(wallet=wallet1, template=data_mb, amount=Decimal("1024"))
    b2 = BalanceFactory(wallet=wallet2, template=main_usd, is_main=True, amount=Decimal("50"))
    bg = BalanceFactory(wallet=GroupWalletFactory(), template=group_usd, amount=Decimal("7"))
    f.balances = {"r1": b1, "r2": b2, "group": bg}

    def card(name, amount, *, reseller=r1, currency="USD", series="100", **kwargs):
        kwargs.setdefault("created_at", T - 10 * DAY)
        kwargs.setdefault("expires_at", T + 200 * DAY)
        f.cards[name] = TopUpCardFactory(
            amount=Decimal(amount), reseller=reseller, currency=currency, series=series, **kwargs
        )
        return f.cards[name]

    def entry(balance, amount, kind, at, channel=Channel.SYSTEM):
        return LedgerEntryFactory(
            balance=balance, amount=Decimal(amount), kind=kind, channel=channel, created_at=at
        )

    def redeem(card_obj, at, channel, reversed_at=None):
        card_obj.activated_at = at
        card_obj.activated_by = sub1
        card_obj.ledger_entry = entry(b1, card_obj.amount, LedgerKind.REDEMPTION, at, channel)
        if reversed_at is not None:
            card_obj.reversed_at = reversed_at
            card_obj.blocked = True
            entry(b1, -card_obj.amount, LedgerKind.REVERSAL, reversed_at, Channel.ADMIN)
        card_obj.save()

    card("c1", "10", expires_at=T + 30 * DAY)
    redeem(card("c2", "20"), T - SECOND, Channel.PANEL)
    redeem(card("c3", "40"), T, Channel.REST)
    card("c4", "80", expires_at=T)
    card("c5", "160", expires_at=T - SECOND)
    card("c6", "320", created_at=T, expires_at=T + 30 * DAY)
    card("c7", "640", created_at=T - SECOND, expires_at=T + 5 * DAY)
    card("c8", "1280", blocked=True, expires_at=T + 30 * DAY)
    redeem(card("c9", "2560"), T + HOUR, Channel.PANEL, reversed_at=T + 2 * HOUR)
    redeem(card("c10", "5120"), T - 2 * DAY, Channel.REST, reversed_at=T - DAY)
    card("c11", "3", series="200", expires_at=T + 60 * DAY)
    card("c12", "7", reseller=r2, expires_at=T + 3 * DAY)
    card("c13", "5", currency="EUR", series="300", expires_at=T + 100 * DAY)
    card("c14", "11", reseller=None, expires_at=T + 30 * DAY)
    card("c15", "0.50", blocked=True, expires_at=T - 5 * DAY)

    noon_d = T - 12 * HOUR
    entry(b1, "25", LedgerKind.TOPUP, noon_d, Channel.REST)
    entry(b1, "5", LedgerKind.ADJUSTMENT, noon_d, Channel.ADMIN)
    entry(b1, "-3", LedgerKind.ADJUSTMENT, T + 12 * HOUR, Channel.ADMIN)
    entry(b2, "9", LedgerKind.TOPUP, noon_d, Channel.REST)
    entry(bg, "1", LedgerKind.ADJUSTMENT, noon_d, Channel.ADMIN)
    return f


@pytest.fixture
def report_day() -> dt.date:
    return end_of_previous_month(timezone.localdate())


@pytest.fixture
def finance(db, report_day) -> Finance:
    return build_finance(report_day)


def _grant_reports(user):
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="reports", codename__in=REPORT_PERMISSIONS
        )
    )
    return user


@pytest.fixture
def finance_client(client, db):
    """An unscoped finance user: staff with the five report permissions only."""
    user = _grant_reports(UserFactory(username="finance", is_staff=True))
    client.force_login(user)
    return client


@pytest.fixture
def r1_client(client, finance):
    """A staff user scoped to Reseller 1 holding every report permission."""
    user = _grant_reports(StaffResellerFactory(reseller=finance.r1, user__username="r1staff").user)
    client.force_login(user)
    return client
