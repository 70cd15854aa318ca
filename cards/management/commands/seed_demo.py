"""Demo data for `make run` and for trying the API by hand.

Safe to run again: it adds only what is missing.
"""

import datetime as dt
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from cards import pins
from cards.models import TopUpCard
from cards.services.generation import card_batch_generate
from cards.services.redemption import card_redeem
from subscribers.models import AccessNumber, Group, Reseller, Subscriber, Subscription
from wallets.models import (
    ApiClient,
    Balance,
    BalanceKind,
    BalanceTemplate,
    Channel,
    LedgerKind,
    VoucherMode,
    Wallet,
)
from wallets.services.intervals import balance_intervals_ensure
from wallets.services.ledger import balance_apply

YEAR = dt.timedelta(days=365)

# The JeraSoft screenshot's cards. Their printed PINs fail our Luhn check digit, so the demo keeps
# the first eleven digits and computes the twelfth.
SCREENSHOT_CARDS = [
    ("3", 4206576, "8.00", "4524 2829 385"),
    ("2", 6448435, "26.00", "6217 2991 849"),
    ("1", 5568053, "15.00", "4236 0187 331"),
]
DEMO_SERIES = "4"
DEMO_SERIES_SIZE = 50
DEMO_SERIES_AMOUNT = Decimal("25.00")


class Command(BaseCommand):
    help = "Create the demo resellers, subscriber Rose Orig, balances, cards and API clients."

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        now = timezone.now()
        reseller1, _ = Reseller.objects.get_or_create(name="Reseller 1")
        Reseller.objects.get_or_create(name="Reseller 2")

        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", "admin")

        rose_user, created = User.objects.get_or_create(
            username="rose", defaults={"first_name": "Rose", "last_name": "Orig"}
        )
        if created:
            rose_user.set_password("rose")
            rose_user.save()
        rose_user.user_permissions.add(Permission.objects.get(codename="redeem_card"))
        rose, _ = Subscriber.objects.get_or_create(
            name="Rose Orig", defaults={"user": rose_user, "reseller": reseller1}
        )

        group, _ = Group.objects.get_or_create(
            name="Demo Group", defaults={"external_id": "group-001"}
        )
        group_wallet, _ = Wallet.objects.get_or_create(group=group)
        subscription, _ = Subscription.objects.get_or_create(
            external_id="rose-001", defaults={"subscriber": rose, "group": group}
        )
        AccessNumber.objects.get_or_create(
            number="5555555555", defaults={"subscription": subscription}
        )
        wallet, _ = Wallet.objects.get_or_create(subscription=subscription)

        main_t = self._template("Main balance USD", BalanceKind.SIMPLE, "USD", 2)
        data_t = self._template("Monthly data MB", BalanceKind.PERIODIC, "MB", 0, period="P1M")
        group_gl_t = self._template("Group G/L USD", BalanceKind.SIMPLE, "USD", 2)
        virtual_t = self._template("Group share USD (virtual)", BalanceKind.VIRTUAL, "USD", 2)
        meter_t = self._template("Voice usage meter", BalanceKind.METER, "MIN", 0, adjust=False)

        start = (now - dt.timedelta(days=15)).replace(hour=0, minute=0, second=0, microsecond=0)
        group_gl, _ = Balance.objects.get_or_create(
            wallet=group_wallet,
            resource_id=1,
            defaults={"template": group_gl_t, "start_time": start},
        )
        Balance.objects.get_or_create(
            wallet=wallet,
            resource_id=12,
            defaults={"template": main_t, "start_time": start, "is_main": True},
        )
        data, data_created = Balance.objects.get_or_create(
            wallet=wallet,
            resource_id=13,
            defaults={"template": data_t, "start_time": start, "end_time": start + YEAR},
        )
        # Its intervals follow the template's period, made as time passes (the worker's
        # recurring task, or the first top-up or reading that needs one).
        balance_intervals_ensure(balance_id=data.pk)
        if data_created:
            balance_apply(
                balance_id=data.pk,
                amount=Decimal("1024"),
                kind=LedgerKind.OPENING,
                reason="Demo: this month's data allowance",
                interval_id=data.intervals.live(now).get().pk,
            )
        Balance.objects.get_or_create(
            wallet=wallet,
            resource_id=14,
            defaults={"template": virtual_t, "start_time": start, "parent": group_gl},
        )
        Balance.objects.get_or_create(
            wallet=wallet, resource_id=15, defaults={"template": meter_t, "start_time": start}
        )

        self._screenshot_cards(reseller1, rose, rose_user, now)
        self._demo_series(reseller1, now)
        self._api_client("partner", VoucherMode.CARD)
        self._api_client("vms", VoucherMode.EXTERNAL)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write("  Operator admin:   admin / admin     http://127.0.0.1:8000/admin/")
        self.stdout.write("  Subscriber panel: rose / rose       http://127.0.0.1:8000/panel/")

    def _template(self, name, kind, currency, precision, *, period=None, adjust=True):
        template, _ = BalanceTemplate.objects.get_or_create(
            name=name,
            defaults={
                "kind": kind,
                "currency": currency,
                "precision": precision,
                "period": period,
                "end_adjust_allowed": adjust,
            },
        )
        return template

    def _screenshot_cards(self, reseller, rose, rose_user, now):
        for series, number, amount, printed in SCREENSHOT_CARDS:
            payload = pins.normalize_pin(printed)
            pin = payload + pins.luhn_check_digit(payload)
            card, created = TopUpCard.objects.get_or_create(
                series=series,
                number=number,
                defaults={
                    "amount": Decimal(amount),
                    "currency": "USD",
                    "pin_digest": pins.pin_digest(pin),
                    "pin_encrypted": pins.encrypt_pin(pin),
                    "pin_length": len(pin),
                    "pin_last4": pin[-4:],
                    "reseller": reseller,
                    "expires_at": now + dt.timedelta(days=365),
                },
            )
            if created:
                self.stdout.write(f"  Card {card.serial}  {amount} USD  PIN {pins.format_pin(pin)}")
            if series == "1" and card.activated_at is None:
                main = Balance.objects.get(wallet__subscription__subscriber=rose, is_main=True)
                card_redeem(
                    pin=pin, balance=main, subscriber=rose, actor=rose_user, channel=Channel.PANEL
                )
                self.stdout.write(f"  Card {card.serial} redeemed by {rose}")

    def _demo_series(self, reseller, now):
        if TopUpCard.objects.filter(series=DEMO_SERIES).exists():
            self.stdout.write(
                f"  Series {DEMO_SERIES} exists already (its PINs were printed once)."
            )
            return
        result = card_batch_generate(
            series=DEMO_SERIES,
            quantity=DEMO_SERIES_SIZE,
            amount=DEMO_SERIES_AMOUNT,
            currency="USD",
            pin_length=12,
            reseller=reseller,
            expires_at=now + dt.timedelta(days=365),
        )
        self.stdout.write(
            f"  Series {DEMO_SERIES}: {DEMO_SERIES_SIZE} new cards of {DEMO_SERIES_AMOUNT} USD. "
            "Their PINs are shown this once:"
        )
        for offset, pin in enumerate(result.pins):
            serial = f"{DEMO_SERIES}-{result.batch.first_number + offset:09d}"
            self.stdout.write(f"    {serial}  {pins.format_pin(pin)}")

    def _api_client(self, username, mode):
        User = get_user_model()
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_password(username)
            user.save()
        user.user_permissions.add(
            *Permission.objects.filter(codename__in=["topup_balance", "adjust_balance"])
        )
        ApiClient.objects.update_or_create(user=user, defaults={"voucher_mode": mode})
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(
            f"  API client {username} ({mode} mode): Authorization: Token {token.key}"
            f"  (or HTTP Basic {username} / {username})"
        )
