"""Shared pieces of the hostile-input fuzz (test_fuzz_api.py, test_fuzz_forms.py).

- `fuzz_world()`: one subscriber with balances, API clients in both voucher modes, an operator,
  and cards in every state, built once per test;
- `full_state()`: everything a request could change, compared before and after each input;
- `each_example_rolled_back()`: every input runs in a savepoint rolled back afterwards, so an input
  the product wrongly accepts cannot hide the next one's effect (and the next starts clean);
- `fuzz_settings()`: hypothesis settings sized for CI, or `TOPUP_FUZZ_EXAMPLES` examples each;
- `hostile_text()`: the strings that break parsers (huge numbers, exponents, NaN, negative zero,
  unicode digits, whitespace, control characters, very long strings).
"""

import contextlib
import datetime as dt
import os
from collections import Counter
from decimal import Decimal

from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from cards.models import CardBatch, CardEvent, CardJob, CardSeries, TopUpCard
from cards.models.events import CardEventKind
from subscribers.models import Reseller
from tests.factories import (
    AccessNumberFactory,
    ApiClientFactory,
    BalanceFactory,
    BalanceIntervalFactory,
    BalanceTemplateFactory,
    ResellerFactory,
    SubscriberFactory,
    SubscriptionFactory,
    TopUpCardFactory,
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

EXTERNAL_ID = "fuzz-sub-7f3a"
ACCESS_NUMBER = "5557300421"
MAIN_RESOURCE_ID = 12
PERIODIC_RESOURCE_ID = 13
METER_RESOURCE_ID = 14
CARD_AMOUNT = Decimal("25.00")


def fuzz_examples(default: int) -> int:
    """Examples per fuzz target: `default` in CI, `TOPUP_FUZZ_EXAMPLES` when set (longer runs)."""
    return int(os.environ.get("TOPUP_FUZZ_EXAMPLES") or default)


def fuzz_settings(default: int, **kwargs) -> settings:
    return settings(
        max_examples=fuzz_examples(default),
        deadline=None,
        database=None,  # no example database in the work tree; CI runs start from scratch
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
        **kwargs,
    )


@contextlib.contextmanager
def each_example_rolled_back():
    """One input: fresh throttle counters, and a savepoint rolled back at the end."""
    cache.clear()
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


class Tally:
    """Inputs tried per target and what they got back, printed at the end (`pytest -s`)."""

    def __init__(self, name: str):
        self.name = name
        self.outcomes: Counter = Counter()

    def add(self, outcome) -> None:
        self.outcomes[outcome] += 1

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    def report(self) -> str:
        common = ", ".join(f"{k}: {n}" for k, n in self.outcomes.most_common(8))
        return f"[fuzz] {self.name}: {self.total} inputs ({common})"


# --- the world the inputs are thrown at --------------------------------------------------------


def _card(reseller, **kwargs):
    return TopUpCardFactory(reseller=reseller, amount=CARD_AMOUNT, **kwargs)


def fuzz_world() -> dict:
    """A subscriber (login with the redeem right) whose subscription has a main USD balance
    (resource 12, 100.00), a periodic one (13) and a meter (14); API clients in card and external
    mode; a superuser; and a card in every state, the new one redeemable by the subscriber."""
    now = timezone.now()
    reseller = ResellerFactory(name="Fuzz Reseller")
    other_reseller = ResellerFactory(name="Other Reseller")
    user = UserFactory(username="fuzz-rose")
    user.user_permissions.add(Permission.objects.get(codename="redeem_card"))
    subscriber = SubscriberFactory(name="Rose Fuzz", user=user, reseller=reseller)
    subscription = SubscriptionFactory(subscriber=subscriber, external_id=EXTERNAL_ID)
    AccessNumberFactory(subscription=subscription, number=ACCESS_NUMBER)
    wallet = WalletFactory(subscription=subscription)
    main = BalanceFactory(
        wallet=wallet,
        resource_id=MAIN_RESOURCE_ID,
        is_main=True,
        template=BalanceTemplateFactory(currency="USD", precision=2),
        start_time=now - dt.timedelta(days=10),
        end_time=now + dt.timedelta(days=300),
    )
    balance_apply(balance_id=main.pk, amount=Decimal("100.00"), kind=LedgerKind.OPENING)
    periodic = BalanceFactory(
        wallet=wallet,
        resource_id=PERIODIC_RESOURCE_ID,
        template=BalanceTemplateFactory(kind=BalanceKind.PERIODIC, currency="MIN", precision=0),
        start_time=now - dt.timedelta(days=35),
        end_time=now + dt.timedelta(days=55),
    )
    for offset in (-35, -5, 25):
        BalanceIntervalFactory(
            balance=periodic,
            start_time=now + dt.timedelta(days=offset),
            end_time=now + dt.timedelta(days=offset + 30),
        )
    BalanceFactory(
        wallet=wallet,
        resource_id=METER_RESOURCE_ID,
        template=BalanceTemplateFactory(kind=BalanceKind.METER, currency="MB", precision=0),
    )

    def api_user(username, mode, perms=("topup_balance", "adjust_balance")):
        api = UserFactory(username=username)
        api.user_permissions.add(*Permission.objects.filter(codename__in=perms))
        ApiClientFactory(user=api, voucher_mode=mode)
        return api

    cards = {
        "new": _card(reseller, series="77", number=1),
        "blocked": _card(reseller, series="77", number=2, blocked=True),
        "expired": _card(reseller, series="77", number=3, expires_at=now - dt.timedelta(days=1)),
        "other_reseller": _card(other_reseller, series="77", number=4),
        "euro": _card(reseller, series="77", number=5, currency="EUR"),
    }
    return {
        "reseller": reseller,
        "other_reseller": other_reseller,
        "subscriber": subscriber,
        "user": user,
        "main": main,
        "periodic": periodic,
        "card_client": api_user("fuzz-partner", VoucherMode.CARD),
        "external_client": api_user("fuzz-vms", VoucherMode.EXTERNAL),
        "admin": UserFactory(username="fuzz-admin", is_staff=True, is_superuser=True),
        "cards": cards,
        "pins": {name: card.pin for name, card in cards.items()},
    }


def full_state() -> dict:
    """Every row a top-up, adjustment, redemption, generation or card edit may write, except the
    audit of failed redemptions (a refused code is recorded by design: see `failed_attempts`)."""
    return {
        "balances": list(
            Balance.objects.order_by("pk").values_list("pk", "amount", "start_time", "end_time")
        ),
        "intervals": list(
            BalanceInterval.objects.order_by("pk").values_list(
                "pk", "amount", "start_time", "end_time"
            )
        ),
        "ledger": list(
            LedgerEntry.objects.order_by("pk").values_list("pk", "balance_id", "amount", "voucher")
        ),
        "balance_events": BalanceEvent.objects.count(),
        "external_vouchers": ExternalVoucher.objects.count(),
        "idempotency_keys": IdempotencyKey.objects.count(),
        "cards": list(
            TopUpCard.objects.order_by("pk").values_list(
                "pk",
                "series",
                "number",
                "amount",
                "currency",
                "expires_at",
                "reseller_id",
                "blocked",
                "activated_at",
                "activated_by_id",
                "ledger_entry_id",
            )  # fmt: skip
        ),
        "card_events": CardEvent.objects.exclude(kind=CardEventKind.REDEEM_FAILED).count(),
        "batches": CardBatch.objects.count(),
        "series": list(CardSeries.objects.order_by("series").values_list("series", flat=True)),
        "jobs": CardJob.objects.count(),
        "resellers": Reseller.objects.count(),
    }


def failed_attempts() -> int:
    return CardEvent.objects.filter(kind=CardEventKind.REDEEM_FAILED).count()


def pin_variants(pin: str) -> list[str]:
    """The ways a PIN could leak into a reply or page: plain, grouped by 4, dashed."""
    grouped = " ".join(pin[i : i + 4] for i in range(0, len(pin), 4))
    return [pin, grouped, grouped.replace(" ", "-"), grouped.replace(" ", "&nbsp;")]


def assert_no_pin_in(text: str, *pins_) -> None:
    for pin in pins_:
        for variant in pin_variants(pin):
            assert variant not in text, "a PIN is echoed back"


# --- hostile strings ---------------------------------------------------------------------------

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")

HOSTILE_NUMBERS = [
    "1e5",
    "1E5",
    "2.5e1",
    "1e-5",
    "NaN",
    "nan",
    "sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "-0",
    "-0.00",
    "+0",
    "0",
    "0.000000001",
    "0.001",
    "-25.00",
    "25.",
    ".5",
    "25,00",
    "1_000",
    "0x19",
    "25.00.00",
    "١٢٣",
    "２５",
    "२५.००",
    "25\u00a0",
    "1" * 19,
    "9" * 18 + "." + "9" * 18,
    "9" * 18,
    "1" + "0" * 400,
    "1e400",
    "-1e400",
    "1e-400",
    "9" * 5000,
    "",
    " ",
    "\t\n",
    "null",
    "true",
    "[]",
    "{}",
    "\ud800",
    "25\udfff",
]

CONTROL = "".join(chr(c) for c in [*range(0, 32), 127, 0x85, 0x2028, 0x2029, 0xFEFF, 0x202E])


def unicode_digits(draw_text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A digit string in another script (Arabic-Indic, fullwidth, Devanagari)."""
    return st.tuples(draw_text, st.sampled_from([ARABIC_INDIC, FULLWIDTH, DEVANAGARI])).map(
        lambda pair: pair[0].translate(pair[1])
    )


ascii_digits = st.text(alphabet="0123456789", min_size=1, max_size=25)


def hostile_text(max_size: int = 80) -> st.SearchStrategy[str]:
    """Strings meant to break a field: the fixed list above, unicode digits, control characters,
    whitespace, 10,000-character strings and random unicode."""
    return st.one_of(
        st.sampled_from(HOSTILE_NUMBERS),
        unicode_digits(ascii_digits),
        st.text(alphabet=CONTROL + "0123456789 ", min_size=1, max_size=20),
        st.text(max_size=max_size),
        st.builds(lambda c, n: c * n, st.sampled_from("9x١\u00a0 <&"), st.integers(1000, 10_000)),
        st.from_regex(r"\A[ \t]*[-+]?[0-9]{0,30}([.,][0-9]{0,30})?([eE][-+]?[0-9]{1,4})?\s*\Z"),
    )
