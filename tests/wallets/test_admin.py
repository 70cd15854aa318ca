"""Operators adjust, change validity and reverse from the admin, through the same services."""

import datetime as dt
import re
import threading
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from cards.models import CardEvent
from cards.models.events import CardEventKind
from cards.services.redemption import card_redeem
from cards.services.reversal import entry_reverse
from tests.factories import TopUpCardFactory, UserFactory
from tests.wallets.conftest import make_balance, snapshot
from wallets.durations import parse_duration
from wallets.exceptions import AlreadyRedeemed, BadData, Result
from wallets.models import (
    Balance,
    BalanceEvent,
    BalanceEventKind,
    BalanceKind,
    LedgerEntry,
    LedgerKind,
)
from wallets.services.adjust import balance_adjust
from wallets.services.reversal import ledger_entry_reverse
from wallets.services.topup import balance_topup

pytestmark = pytest.mark.django_db


def staff(*perms):
    user = UserFactory(is_staff=True)
    codenames = {"view_balance", "change_balance", "view_ledgerentry", *perms}
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def operator(client):
    user = staff("adjust_balance", "reverse_ledgerentry")
    client.force_login(user)
    return user


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# --- Adjust amount ------------------------------------------------------------------------------


def test_the_balance_page_links_to_adjust_and_validity(client, operator):
    balance = make_balance()

    page = client.get(reverse("admin:wallets_balance_change", args=[balance.pk]))

    assert page.status_code == 200
    assert reverse("admin:wallets_balance_adjust", args=[balance.pk]).encode() in page.content
    assert reverse("admin:wallets_balance_validity", args=[balance.pk]).encode() in page.content
    entries = client.get(reverse("admin:wallets_ledgerentry_changelist"), {"balance": balance.pk})
    assert entries.status_code == 200 and entries.context["cl"].result_count == 0


def test_the_balance_history_lists_its_changes(client, operator):
    operator.user_permissions.add(Permission.objects.get(codename="view_balanceevent"))
    balance, other = make_balance(end_days=5), make_balance()
    balance_topup(
        balance=balance, amount=Decimal("2.00"), voucher="H-1", end_time=parse_duration("P1W")
    )
    balance_topup(balance=other, amount=Decimal("2.00"), voucher="H-2")

    page = client.get(reverse("admin:wallets_balance_change", args=[balance.pk]))
    history = client.get(reverse("admin:wallets_balanceevent_changelist"), {"balance": balance.pk})

    assert b"History" in page.content
    kinds = sorted(event.kind for event in history.context["cl"].result_list)
    assert kinds == [BalanceEventKind.END_TIME, BalanceEventKind.TOPUP]


def test_an_operator_credits_a_balance_with_a_reason(client, operator):
    balance = make_balance(amount="10.00")
    url = reverse("admin:wallets_balance_adjust", args=[balance.pk])

    assert client.get(url).status_code == 200
    response = client.post(
        url, {"adjust_type": "2", "amount": "4.00", "reason": "Refund of a call"}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse(
        "admin:wallets_balance_change", args=[balance.pk]
    )
    assert any("now 6.00" in m for m in messages_of(response))
    entry = LedgerEntry.objects.get(kind=LedgerKind.ADJUSTMENT)
    assert (entry.amount, entry.reason, entry.channel, entry.actor) == (
        Decimal("-4.00"),
        "Refund of a call",
        "admin",
        operator,
    )
    assert BalanceEvent.objects.filter(kind=BalanceEventKind.ADJUSTMENT, actor=operator).exists()


def test_a_rule_error_is_shown_as_a_message_and_changes_nothing(client, operator):
    balance = make_balance(amount="1.00")
    before = snapshot()

    response = client.post(
        reverse("admin:wallets_balance_adjust", args=[balance.pk]),
        {"adjust_type": "2", "amount": "5.00", "reason": "Too much"},
    )

    assert response.status_code == 200
    assert any("Insufficient balance" in m for m in messages_of(response))
    assert snapshot() == before


def test_adjusting_needs_the_permission(client):
    client.force_login(staff())
    balance = make_balance(amount="1.00")
    before = snapshot()

    url = reverse("admin:wallets_balance_adjust", args=[balance.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"adjust_type": "1", "amount": "5", "reason": "x"}).status_code == 403
    assert snapshot() == before


# --- Validity -----------------------------------------------------------------------------------


def test_an_operator_extends_the_end_and_the_aggregate_above_follows(client, operator):
    top = make_balance(group=True, end_days=10)
    member = make_balance(end_days=5, parent=top)

    response = client.post(
        reverse("admin:wallets_balance_validity", args=[member.pk]),
        {"end_relative": "P4W", "reason": "Customer retention"},
        follow=True,
    )

    assert any("1 aggregated balance" in m for m in messages_of(response))
    assert Balance.objects.get(pk=member.pk).end_time == member.end_time + dt.timedelta(weeks=4)
    assert Balance.objects.get(pk=top.pk).end_time == member.end_time + dt.timedelta(weeks=4)


@pytest.mark.parametrize(
    ("balance_kwargs", "data", "text"),
    [
        ({"private": True}, {"start_time": "2000-01-01T00:00"}, "private"),
        ({}, {"start_time": "2999-01-01T00:00"}, "earlier"),
        ({"end_adjust": False}, {"end_time": "2999-01-01T00:00"}, "does not allow"),
        ({}, {"end_relative": "four weeks"}, "ISO 8601"),
        ({}, {}, "Give a new start time"),
    ],
)
def test_validity_errors_are_shown_and_change_nothing(client, operator, balance_kwargs, data, text):
    balance = make_balance(**balance_kwargs)
    before = snapshot()

    response = client.post(
        reverse("admin:wallets_balance_validity", args=[balance.pk]),
        {"reason": "test", **data},
    )

    assert response.status_code == 200
    assert text in response.content.decode()
    assert snapshot() == before


# --- Reversal -----------------------------------------------------------------------------------


def test_reversing_a_card_redemption_compensates_blocks_and_audits(client, operator):
    balance = make_balance()
    subscriber = balance.wallet.subscription.subscriber
    card = TopUpCardFactory(amount=Decimal("25.00"), reseller=None)
    redemption = card_redeem(pin=card.pin, balance=balance, subscriber=subscriber)
    entry = redemption.card.ledger_entry
    change = reverse("admin:wallets_ledgerentry_change", args=[entry.pk])
    url = reverse("admin:wallets_ledgerentry_reverse", args=[entry.pk])

    assert url.encode() in client.get(change).content
    confirmation = client.get(url)
    assert card.serial.encode() in confirmation.content
    response = client.post(url, {"reason": "Card sold by mistake"}, follow=True)

    assert response.status_code == 200
    reversal = LedgerEntry.objects.get(kind=LedgerKind.REVERSAL)
    assert (reversal.amount, reversal.reverses, reversal.reason) == (
        Decimal("-25.00"),
        entry,
        "Card sold by mistake",
    )
    assert Balance.objects.get(pk=balance.pk).amount == 0
    assert LedgerEntry.objects.filter(pk=entry.pk).exists()  # never deleted
    card.refresh_from_db()
    assert card.blocked and card.reversed_at is not None
    event = CardEvent.objects.get(kind=CardEventKind.REVERSED)
    assert event.actor == operator and event.changes["reason"] == "Card sold by mistake"
    assert BalanceEvent.objects.filter(kind=BalanceEventKind.REVERSAL).count() == 1
    # Reversed once: no link any more, and a second attempt is refused.
    assert url.encode() not in client.get(change).content
    before = snapshot()
    again = client.post(url, {"reason": "again"})
    assert any("already been reversed" in m for m in messages_of(again))
    assert snapshot() == before


def test_reversing_an_external_topup(client, operator):
    balance = make_balance()
    topup = balance_topup(balance=balance, amount=Decimal("9.00"), voucher="EXT-9")

    client.post(
        reverse("admin:wallets_ledgerentry_reverse", args=[topup.entry.pk]), {"reason": "Fraud"}
    )

    assert Balance.objects.get(pk=balance.pk).amount == 0
    assert LedgerEntry.objects.get(kind=LedgerKind.REVERSAL).voucher == "EXT-9"


def test_reversing_needs_its_permission(client):
    client.force_login(staff("adjust_balance"))
    balance = make_balance()
    topup = balance_topup(balance=balance, amount=Decimal("9.00"), voucher="EXT-9")
    before = snapshot()

    url = reverse("admin:wallets_ledgerentry_reverse", args=[topup.entry.pk])
    assert client.post(url, {"reason": "x"}).status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize("case", ["spent", "adjustment", "no reason", "twice"])
def test_reversal_refusals_change_nothing(case):
    balance = make_balance()
    topup = balance_topup(balance=balance, amount=Decimal("9.00"), voucher="EXT-9")
    entry_id, reason, error = topup.entry.pk, "why", BadData
    if case == "spent":
        balance_adjust(balance=balance, adjust_type=2, amount=Decimal("5"), reason="usage")
    elif case == "adjustment":
        entry_id = balance_adjust(
            balance=balance, adjust_type=1, amount=Decimal("5"), reason="bonus"
        ).entry.pk
    elif case == "no reason":
        reason = " "
    else:
        ledger_entry_reverse(entry_id=entry_id, reason="first")
        error = AlreadyRedeemed
    before = snapshot()

    with pytest.raises(error) as raised:
        entry_reverse(entry_id=entry_id, reason=reason)

    assert raised.value.result in (Result.BAD_DATA, Result.ALREADY_REDEEMED)
    assert snapshot() == before


def test_history_admin_pages_are_read_only(client, operator):
    operator.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_balanceevent", "view_externalvoucher"])
    )
    balance = make_balance()
    balance_topup(balance=balance, amount=Decimal("1.00"), voucher="EXT-1")

    for name in ["balanceevent", "externalvoucher", "ledgerentry"]:
        assert client.get(reverse(f"admin:wallets_{name}_changelist")).status_code == 200
        assert client.get(reverse(f"admin:wallets_{name}_add")).status_code == 403


def _wallet_form_data(page, wallet, balance, **balance_fields):
    data = {k: v for k, v in page.context["adminform"].form.initial.items() if v is not None}
    data.update(
        {
            "subscription": wallet.subscription_id,
            "balances-TOTAL_FORMS": "1",
            "balances-INITIAL_FORMS": "1",
            "balances-0-id": balance.pk,
            "balances-0-wallet": wallet.pk,
            "balances-0-resource_id": balance.resource_id,
            "balances-0-template": balance.template_id,
            "balances-0-start_time_0": balance.start_time.strftime("%Y-%m-%d"),
            "balances-0-start_time_1": balance.start_time.strftime("%H:%M:%S"),
            "balances-0-is_main": "on" if balance.is_main else "",
            **{f"balances-0-{name}": value for name, value in balance_fields.items()},
        }
    )
    return data


def test_the_wallet_page_shows_its_balances_but_cannot_move_their_validity(client):
    """Validity moves only through Change validity (rules S1–S7/E1–E9, a recorded event)."""
    client.force_login(staff("change_wallet", "view_wallet"))
    balance = make_balance(end_days=5)
    wallet, before = balance.wallet, snapshot()
    url = reverse("admin:wallets_wallet_change", args=[wallet.pk])
    page = client.get(url)

    client.post(
        url, _wallet_form_data(page, wallet, balance, end_time_0="2099-01-01", end_time_1="00:00")
    )

    assert str(balance.template).encode() in page.content
    assert snapshot() == before


def test_a_balance_keeps_its_wallet_and_template_once_it_exists(client):
    """Moving money to another subscriber or currency is not an edit of the balance page."""
    client.force_login(staff())
    balance, other = make_balance(), make_balance()
    assert other.template_id != balance.template_id
    url = reverse("admin:wallets_balance_change", args=[balance.pk])

    client.post(
        url,
        {
            "wallet": other.wallet_id,
            "template": other.template_id,
            "resource_id": balance.resource_id,
        },
    )

    moved = Balance.objects.get(pk=balance.pk)
    assert (moved.wallet_id, moved.template_id) == (balance.wallet_id, balance.template_id)


# --- One submit, one effect (common/once.py) ----------------------------------------------------


def rendered_token(page) -> str:
    """The one-time token a browser would post back with the form it shows."""
    match = re.search(rb'name="submission_token" value="([A-Za-z0-9_-]{32})"', page.content)
    return match.group(1).decode() if match else ""  # none: the effect tells


def test_adjust_amount_submitted_twice_credits_once(client, operator):
    balance = make_balance(amount="10.00")
    url = reverse("admin:wallets_balance_adjust", args=[balance.pk])
    data = {
        "adjust_type": "1",
        "amount": "4.00",
        "reason": "Goodwill",
        "submission_token": rendered_token(client.get(url)),
    }

    first = client.post(url, data, follow=True)
    before = snapshot()
    second = client.post(url, data, follow=True)

    assert any("now 14.00" in m for m in messages_of(first))
    assert Balance.objects.get(pk=balance.pk).amount == Decimal("14.00")
    assert LedgerEntry.objects.filter(kind=LedgerKind.ADJUSTMENT).count() == 1
    assert snapshot() == before
    assert second.redirect_chain[-1][0] == reverse(
        "admin:wallets_balance_change", args=[balance.pk]
    )
    assert any("already submitted" in m for m in messages_of(second))


def test_the_form_opened_again_makes_the_same_change_again(client, operator):
    balance = make_balance(amount="10.00")
    url = reverse("admin:wallets_balance_adjust", args=[balance.pk])
    data = {"adjust_type": "1", "amount": "4.00", "reason": "Goodwill"}

    for _ in range(2):
        client.post(url, {**data, "submission_token": rendered_token(client.get(url))})

    assert Balance.objects.get(pk=balance.pk).amount == Decimal("18.00")


def test_a_refused_submission_keeps_its_token_for_the_corrected_form(client, operator):
    balance = make_balance(amount="1.00")
    url = reverse("admin:wallets_balance_adjust", args=[balance.pk])
    token = rendered_token(client.get(url))
    before = snapshot()

    refused = client.post(
        url, {"adjust_type": "2", "amount": "5.00", "reason": "Too much", "submission_token": token}
    )
    assert snapshot() == before
    assert rendered_token(refused) == token
    corrected = client.post(
        url,
        {"adjust_type": "2", "amount": "0.50", "reason": "Right", "submission_token": token},
        follow=True,
    )

    assert any("now 0.50" in m for m in messages_of(corrected))


def test_change_validity_submitted_twice_extends_once(client, operator):
    balance = make_balance(end_days=5)
    end = Balance.objects.get(pk=balance.pk).end_time
    url = reverse("admin:wallets_balance_validity", args=[balance.pk])
    data = {
        "end_relative": "P4W",
        "reason": "Loyalty",
        "submission_token": rendered_token(client.get(url)),
    }

    client.post(url, data)
    before = snapshot()
    second = client.post(url, data, follow=True)

    assert Balance.objects.get(pk=balance.pk).end_time == end + dt.timedelta(weeks=4)
    assert any("already submitted" in m for m in messages_of(second))
    assert snapshot() == before


def test_reverse_submitted_twice_reverses_once_and_says_so(client, operator):
    balance = make_balance()
    topup = balance_topup(balance=balance, amount=Decimal("9.00"), voucher="EXT-TWICE")
    url = reverse("admin:wallets_ledgerentry_reverse", args=[topup.entry.pk])
    data = {"reason": "Fraud", "submission_token": rendered_token(client.get(url))}

    client.post(url, data)
    before = snapshot()
    second = client.post(url, data, follow=True)

    assert LedgerEntry.objects.filter(kind=LedgerKind.REVERSAL).count() == 1
    assert second.redirect_chain[-1][0] == reverse(
        "admin:wallets_ledgerentry_change", args=[topup.entry.pk]
    )
    assert any("already submitted" in m for m in messages_of(second))
    assert snapshot() == before


def test_another_users_token_is_their_own(client, operator):
    """Tokens are claimed per user: one operator's submitted form does not block another's."""
    balance = make_balance(amount="10.00")
    url = reverse("admin:wallets_balance_adjust", args=[balance.pk])
    data = {
        "adjust_type": "1",
        "amount": "1.00",
        "reason": "Goodwill",
        "submission_token": rendered_token(client.get(url)),
    }
    client.post(url, data)
    client.force_login(staff("adjust_balance"))

    client.post(url, data)

    assert Balance.objects.get(pk=balance.pk).amount == Decimal("12.00")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_tabs_posting_the_same_form_at_once_credit_once():
    """Real parallel connections: the second claim waits on the first's unique index entry,
    then finds it committed and changes nothing."""
    from django.test import Client

    user = staff("adjust_balance")
    balance = make_balance(amount="10.00")
    url = reverse("admin:wallets_balance_adjust", args=[balance.pk])
    tabs = [Client(), Client()]
    for tab in tabs:
        tab.force_login(user)
    data = {
        "adjust_type": "1",
        "amount": "4.00",
        "reason": "Goodwill",
        "submission_token": rendered_token(tabs[0].get(url)),
    }
    barrier = threading.Barrier(len(tabs))
    statuses = []

    def post(tab):
        try:
            barrier.wait()
            statuses.append(tab.post(url, data).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(tab,)) for tab in tabs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [302, 302]
    assert Balance.objects.get(pk=balance.pk).amount == Decimal("14.00")
    assert LedgerEntry.objects.filter(kind=LedgerKind.ADJUSTMENT).count() == 1


def test_a_periodic_balance_page_shows_an_interval_for_now_after_its_intervals_ran_out(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    balance = make_balance(kind=BalanceKind.PERIODIC)
    now = timezone.now()
    balance.intervals.filter(end_time__gt=now).delete()  # its intervals ran out before now
    assert not balance.intervals.live(now).exists()

    page = client.get(reverse("admin:wallets_balance_change", args=[balance.pk]))

    assert page.status_code == 200
    current = balance.intervals.live(timezone.now()).get()
    intervals = page.context["inline_admin_formsets"][0]
    assert current in [form.instance for form in intervals.formset.forms]
    assert not intervals.has_add_permission and not intervals.has_change_permission
