"""What an operator reads on the balance screens (issue 14, "Admin copy"): amounts at the
template's precision with thousands separators, one History, refusals in plain words."""

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from tests.factories import ExternalVoucherFactory, LedgerEntryFactory, UserFactory
from tests.wallets.conftest import make_balance, snapshot
from wallets.models import BalanceKind, LedgerEntry, LedgerKind
from wallets.services.adjust import balance_adjust
from wallets.services.topup import balance_topup

pytestmark = pytest.mark.django_db

RAW = re.compile(r"\d\.\d{6}\b")  # an amount as stored: 177.260000


@pytest.fixture
def operator(client):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=[
                "view_wallet",
                "view_balance",
                "view_balanceinterval",
                "change_balance",
                "adjust_balance",
                "view_ledgerentry",
                "reverse_ledgerentry",
                "view_balanceevent",
                "view_externalvoucher",
            ]
        )
    )
    client.force_login(user)
    return user


def text(response) -> str:
    return response.content.decode()


def shown(response) -> str:
    """The page's text without its tags (an input's min="0.000001" is not something read)."""
    return re.sub(r"<[^>]*>", "", text(response))


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_balance_amounts_read_at_the_template_precision_with_separators(client, operator):
    balance = make_balance(amount="1234567.26")
    minutes = make_balance(precision=0, currency="MIN", amount="1500")
    balance_topup(balance=balance, amount=Decimal("10.00"), voucher="EXT-1")
    ExternalVoucherFactory(ledger_entry=LedgerEntryFactory(balance=minutes, amount=Decimal("2500")))

    pages = {
        "balance list": client.get(reverse("admin:wallets_balance_changelist")),
        "balance page": client.get(reverse("admin:wallets_balance_change", args=[balance.pk])),
        "wallet page": client.get(reverse("admin:wallets_wallet_change", args=[balance.wallet_id])),
        "ledger list": client.get(reverse("admin:wallets_ledgerentry_changelist")),
        "ledger page": client.get(
            reverse(
                "admin:wallets_ledgerentry_change",
                args=[LedgerEntry.objects.get(kind=LedgerKind.TOPUP).pk],
            )
        ),
        "history": client.get(reverse("admin:wallets_balanceevent_changelist")),
        "vouchers": client.get(reverse("admin:wallets_externalvoucher_changelist")),
        "adjust page": client.get(reverse("admin:wallets_balance_adjust", args=[balance.pk])),
    }

    for name, page in pages.items():
        assert page.status_code == 200, name
        assert not RAW.search(shown(page)), (name, RAW.search(shown(page)))
    assert "1,234,577.26 USD" in text(pages["balance list"])
    assert "1,500 MIN" in text(pages["balance list"])
    assert "1,234,577.26 USD" in text(pages["balance page"])
    assert "1,234,577.26 USD" in text(pages["wallet page"])
    assert "1,234,567.26 USD" in text(pages["ledger list"])  # the opening entry
    assert "10.00 USD" in text(pages["ledger page"])
    assert "Amount 1,234,567.26 → 1,234,577.26 USD" in text(pages["history"])
    assert "2,500 MIN" in text(pages["vouchers"])
    assert "1,234,577.26 USD" in text(pages["adjust page"])


def test_interval_amounts_read_at_the_template_precision(client, operator):
    balance = make_balance(BalanceKind.PERIODIC, precision=3, currency="MB", amount="2048.5")

    page = client.get(reverse("admin:wallets_balance_change", args=[balance.pk]))

    assert "2,048.500 MB" in text(page)
    assert "0.000 MB" in text(page)  # the other intervals
    assert not RAW.search(shown(page))


def test_adjust_and_reverse_messages_show_amounts_as_the_pages_do(client, operator):
    balance = make_balance(amount="1000.00")

    adjusted = client.post(
        reverse("admin:wallets_balance_adjust", args=[balance.pk]),
        {"adjust_type": "1", "amount": "234.5", "reason": "Goodwill"},
        follow=True,
    )
    topup = balance_topup(balance=balance, amount=Decimal("1000.00"), voucher="EXT-2")
    url = reverse("admin:wallets_ledgerentry_reverse", args=[topup.entry.pk])
    confirmation = client.get(url)
    reversed_ = client.post(url, {"reason": "Fraud"}, follow=True)

    assert "Balance adjusted: the amount is now 1,234.50 USD." in messages_of(adjusted)
    assert "compensating entry of <strong>-1,000.00 USD</strong>" in text(confirmation)
    assert any(m.startswith("Reversed: -1,000.00 USD on ") for m in messages_of(reversed_))


def test_a_balance_page_has_one_history_button_and_it_lists_the_balance_events(client, operator):
    balance = make_balance(amount="5.00")

    page = text(client.get(reverse("admin:wallets_balance_change", args=[balance.pk])))

    tools = re.search(r'<ul class="object-tools">(.*?)</ul>', page, re.S).group(1)
    assert len(re.findall(r">\s*History\s*<", tools, re.I)) == 1
    events = reverse("admin:wallets_balanceevent_changelist") + f"?balance={balance.pk}"
    assert f'href="{events}"' in tools


def test_without_the_events_right_the_admin_history_stays_the_one_button(client):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_balance"]))
    client.force_login(user)
    balance = make_balance()

    page = text(client.get(reverse("admin:wallets_balance_change", args=[balance.pk])))

    tools = re.search(r'<ul class="object-tools">(.*?)</ul>', page, re.S).group(1)
    assert len(re.findall(r">\s*History\s*<", tools, re.I)) == 1
    assert reverse("admin:wallets_balance_history", args=[balance.pk]) in tools


@pytest.mark.parametrize(
    ("case", "words", "code"),
    [
        ("adjust", "Insufficient balance: the amount would become negative.", "(Result 10)"),
        (
            "validity",
            "This balance&#x27;s template does not allow end time adjustment.",
            "(Result 10, rule E1)",
        ),
        ("reverse", "This entry has already been reversed.", "(Result 19)"),
    ],
)
def test_refusals_read_in_plain_words_with_the_result_code_in_small_print(
    client, operator, case, words, code
):
    balance = make_balance(amount="1.00", end_adjust=False, end_days=30)
    entry = balance_topup(balance=balance, amount=Decimal("2.00"), voucher="EXT-3").entry
    if case == "reverse":
        client.post(
            reverse("admin:wallets_ledgerentry_reverse", args=[entry.pk]), {"reason": "first"}
        )
    before = snapshot()

    if case == "adjust":
        url = reverse("admin:wallets_balance_adjust", args=[balance.pk])
        data = {"adjust_type": "2", "amount": "50", "reason": "Too much"}
    elif case == "validity":
        url = reverse("admin:wallets_balance_validity", args=[balance.pk])
        data = {"end_time": "2999-01-01T00:00", "reason": "Longer"}
    else:
        url = reverse("admin:wallets_ledgerentry_reverse", args=[entry.pk])
        data = {"reason": "again"}
    response = client.post(url, data)

    page = text(response)
    assert f'{words} <small class="result-code">{code}</small>' in page
    assert f"{words} (Result" not in page
    assert snapshot() == before


def test_an_aggregate_that_moves_with_a_balance_is_counted_in_words(client, operator):
    top = make_balance(group=True, end_days=10)
    member = make_balance(end_days=5, parent=top)

    response = client.post(
        reverse("admin:wallets_balance_validity", args=[member.pk]),
        {"end_relative": "P4W", "reason": "Customer retention"},
        follow=True,
    )

    assert "Validity changed. 1 aggregated balance above it changed with it." in messages_of(
        response
    )
    assert not any("balance(s)" in m for m in messages_of(response))


def test_a_periodic_adjustment_lands_in_the_interval_shown(client, operator):
    """The ledger's amount and the interval's are the same figure, at the same precision."""
    balance = make_balance(BalanceKind.PERIODIC, amount="10.00")
    balance_adjust(balance=balance, adjust_type=1, amount=Decimal("1990"), reason="Bonus")

    page = text(client.get(reverse("admin:wallets_balance_change", args=[balance.pk])))

    assert page.count("2,000.00 USD") >= 2  # the balance and its current interval
