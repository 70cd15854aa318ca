"""factory-boy factories for every model. Cards get real PIN digests: `.pin` holds the clear PIN."""

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from cards import pins
from cards.models import (
    CardBatch,
    CardDelivery,
    CardEvent,
    CardJob,
    CardJobCard,
    CardSeries,
    Printer,
    PrintOrder,
    PrintOrderChunk,
    TopUpCard,
)
from cards.models.events import CardEventKind
from subscribers.models import (
    AccessNumber,
    Group,
    Reseller,
    StaffReseller,
    Subscriber,
    Subscription,
)
from wallets.models import (
    ApiClient,
    Balance,
    BalanceEvent,
    BalanceEventKind,
    BalanceInterval,
    BalanceKind,
    BalanceTemplate,
    ExternalVoucher,
    IdempotencyKey,
    LedgerEntry,
    LedgerKind,
    RateCounter,
    Wallet,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "secret")

    @factory.post_generation
    def save_password(self, create, extracted, **kwargs):
        if create:
            self.save()


class ResellerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reseller
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Reseller {n + 1}")


class StaffResellerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StaffReseller

    user = factory.SubFactory(UserFactory, is_staff=True)
    reseller = factory.SubFactory(ResellerFactory)


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group

    name = factory.Sequence(lambda n: f"Group {n}")
    external_id = factory.Sequence(lambda n: f"group-{n:03d}")


class SubscriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscriber

    name = factory.Sequence(lambda n: f"Subscriber {n}")
    user = factory.SubFactory(UserFactory)
    reseller = factory.SubFactory(ResellerFactory)


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    subscriber = factory.SubFactory(SubscriberFactory)
    external_id = factory.Sequence(lambda n: f"sub-{n:05d}")


class AccessNumberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AccessNumber

    subscription = factory.SubFactory(SubscriptionFactory)
    number = factory.Sequence(lambda n: f"5550{n:06d}")


class WalletFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Wallet

    subscription = factory.SubFactory(SubscriptionFactory)


class GroupWalletFactory(WalletFactory):
    subscription = None
    group = factory.SubFactory(GroupFactory)


class BalanceTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BalanceTemplate

    name = factory.Sequence(lambda n: f"Template {n}")
    kind = BalanceKind.SIMPLE
    currency = "USD"
    precision = 2
    period = factory.LazyAttribute(lambda o: "P30D" if o.kind == BalanceKind.PERIODIC else None)


class BalanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Balance

    wallet = factory.SubFactory(WalletFactory)
    resource_id = factory.Sequence(lambda n: n + 100)
    template = factory.SubFactory(BalanceTemplateFactory)
    start_time = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=10))


class BalanceIntervalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BalanceInterval

    balance = factory.SubFactory(
        BalanceFactory, template__kind=BalanceKind.PERIODIC, template__currency="MB"
    )
    start_time = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=5))
    end_time = factory.LazyAttribute(lambda o: o.start_time + dt.timedelta(days=30))


class LedgerEntryFactory(factory.django.DjangoModelFactory):
    """Writes an entry *without* changing the balance: only for corrupting data in tests."""

    class Meta:
        model = LedgerEntry

    balance = factory.SubFactory(BalanceFactory)
    amount = Decimal("1.00")
    kind = LedgerKind.ADJUSTMENT


class ApiClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiClient

    user = factory.SubFactory(UserFactory)


class BalanceEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BalanceEvent

    balance = factory.SubFactory(BalanceFactory)
    kind = factory.LazyFunction(lambda: BalanceEventKind.values[0])


class ExternalVoucherFactory(factory.django.DjangoModelFactory):
    """A consumed external reference; its ledger entry is a hand-made one (no balance change)."""

    class Meta:
        model = ExternalVoucher

    client = factory.SubFactory(ApiClientFactory)
    reference = factory.Sequence(lambda n: f"EXT-{n:06d}")
    ledger_entry = factory.SubFactory(LedgerEntryFactory, kind=LedgerKind.TOPUP)
    balance = factory.LazyAttribute(lambda o: o.ledger_entry.balance)
    amount = factory.LazyAttribute(lambda o: o.ledger_entry.amount)


class IdempotencyKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IdempotencyKey

    user = factory.SubFactory(UserFactory)
    key = factory.Sequence(lambda n: f"key-{n}")
    fingerprint = "0" * 64


class RateCounterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RateCounter

    key = factory.Sequence(lambda n: f"test-key-{n}")
    slot = 0


class CardSeriesFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CardSeries
        django_get_or_create = ("series",)

    series = factory.Sequence(lambda n: str(100 + n))


class CardJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CardJob

    params = factory.LazyFunction(lambda: {"series": "9", "quantity": 10})
    total = 10


class CardJobCardFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CardJobCard

    job = factory.SubFactory(CardJobFactory)
    card_id = factory.Sequence(lambda n: n + 1)


class CardBatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CardBatch

    series = "9"
    first_number = 1
    quantity = 1
    amount = Decimal("10.00")
    currency = "USD"
    pin_length = 12
    expires_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=30))


class TopUpCardFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TopUpCard

    pin = factory.LazyFunction(lambda: pins.generate_pin(12))
    series = "9"
    number = factory.Sequence(lambda n: n + 1)
    amount = Decimal("10.00")
    currency = "USD"
    pin_digest = factory.LazyAttribute(lambda o: pins.pin_digest(o.pin))
    pin_encrypted = factory.LazyAttribute(lambda o: pins.encrypt_pin(o.pin))
    pin_length = factory.LazyAttribute(lambda o: len(o.pin))
    pin_last4 = factory.LazyAttribute(lambda o: o.pin[-4:])
    reseller = factory.SubFactory(ResellerFactory)
    expires_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=30))

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        pin = kwargs.pop("pin", None)
        card = super()._create(model_class, *args, **kwargs)
        card.pin = pin
        return card


class CardEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CardEvent

    kind = CardEventKind.EDITED
    card = factory.SubFactory(TopUpCardFactory)
    serial = factory.LazyAttribute(lambda o: o.card.serial if o.card else "")


class PrinterFactory(factory.django.DjangoModelFactory):
    """A printer row as stored; its key is not a real one (tests/cards/gpg_keys.py makes real
    keys for the tests that encrypt)."""

    class Meta:
        model = Printer

    name = factory.Sequence(lambda n: f"Printing house {n}")
    public_key = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n(not a real key)\n"
    fingerprint = factory.Sequence(lambda n: f"{n:040X}")
    key_description = "ed25519"


class PrintOrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PrintOrder

    printer = factory.SubFactory(PrinterFactory)
    key_fingerprint = factory.LazyAttribute(lambda o: o.printer.fingerprint)
    layout = "standard"
    series = "9"
    first_number = 1
    last_number = 10
    expected = 10


class PrintOrderChunkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PrintOrderChunk

    order = factory.SubFactory(PrintOrderFactory)
    position = factory.Sequence(lambda n: n)
    data = b"ciphertext"


class CardDeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CardDelivery

    series = "9"
    first_number = 1
    last_number = 10
    reference = factory.Sequence(lambda n: f"Box {n}")
    woken = 10
