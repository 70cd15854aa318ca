"""Property-based stateful test: the real services, step by step, against an in-memory model.

Hypothesis drives random sequences of card generation, panel redemption, REST top-ups in card
mode and in external mode (with retries of the same voucher), adjustments (credit, debit, with
validity changes and Idempotency-Keys), validity changes, Mass Edit, Delete all and reversals
through the services of cards/ and wallets/, on the real database (SQLite or PostgreSQL). The model
(tests/reliability/stateful_model.py) predicts each outcome: the typed error and rule of every
refusal, the status of every card, every balance amount, start and end, every serial number,
the ledger, the audit counts and the redemption lockout. After every step the database must agree
with it, `check_ledger` must pass and the balances must add up to the ledger; every refused
operation must have changed nothing (a failed redemption writes only its audit event).

Each example runs inside a savepoint that is rolled back at its end, so each starts from the same
world: three subscribers (USD, private USD, EUR with a fixed end), two resellers, an operator, a
reseller-scoped operator and two API clients, and no card.

Size: TOPUP_STATEFUL_EXAMPLES examples (default 20) of up to TOPUP_STATEFUL_STEPS steps (default
30). `-s` prints what was tried.
"""

import datetime as dt
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.db.models import Count, F, Sum
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from cards import lockout, pins
from cards.models import CardEvent, TopUpCard
from cards.models.events import CardEventKind
from cards.services.generation import card_batch_generate
from cards.services.mass_edit import EXPIRE_NOW, PRESERVE, cards_mass_delete, cards_mass_update
from cards.services.redemption import card_redeem
from cards.services.reversal import card_reverse, entry_reverse
from cards.services.topup import card_topup
from subscribers.models import StaffReseller
from tests.factories import (
    ApiClientFactory,
    BalanceFactory,
    BalanceTemplateFactory,
    ResellerFactory,
    SubscriberFactory,
    UserFactory,
    WalletFactory,
)
from tests.reliability import stateful_model as model
from tests.reliability.stateful_model import Card, Fail, Model, Rel
from tests.reliability.support import state
from wallets.durations import parse_duration
from wallets.exceptions import AlreadyRedeemed, BadData, WalletError
from wallets.models import (
    Balance,
    BalanceEvent,
    Channel,
    ExternalVoucher,
    IdempotencyKey,
    LedgerEntry,
)
from wallets.services.adjust import balance_adjust, request_fingerprint
from wallets.services.topup import balance_topup_external
from wallets.services.validity import balance_change_validity

EXAMPLES = int(os.environ.get("TOPUP_STATEFUL_EXAMPLES", "20"))
STEPS = int(os.environ.get("TOPUP_STATEFUL_STEPS", "30"))

SERIES = ["7", "42", "905"]
# 0.10 and 0.20: their float sum is not 0.30 (SQLite keeps decimals as floats).
CARD_AMOUNTS = ["5.00", "10.00", "12.34", "0.10"]
DAY = dt.timedelta(days=1)
MILLIONTH = Decimal("0.000001")
# Validity values: ("abs", days from now) or ("rel", ISO 8601 duration from the current end).
ENDS = st.sampled_from(
    [("abs", -15), ("abs", -3), ("abs", 5), ("abs", 40), ("rel", "P1D"), ("rel", "P1W")]
    + [("rel", "P4W")]
)
STARTS = st.sampled_from([("abs", -30), ("abs", -12), ("abs", -5), ("abs", 2), ("rel", "P1D")])
# Simplest first: hypothesis starts from and shrinks towards the first element.
BATCH_ARGS = dict(
    series=st.sampled_from(SERIES),
    quantity=st.integers(1, 5),
    pin_length=st.sampled_from([8, 7, 6, 5]),
    amount=st.sampled_from(CARD_AMOUNTS),
    currency=st.sampled_from(["USD", "USD", "EUR"]),
    owner=st.sampled_from([None, 0, 1]),
    expiry_days=st.sampled_from([30, 30, 90, -1]),
    scoped=st.sampled_from([False, False, False, True]),
)
BATCH = st.fixed_dictionaries(BATCH_ARGS)
JUNK_PINS = ["", " - ", "abcdefgh", "１２３４５６", "1234", "123456789012345678901"]
_SEPARATORS = re.compile(r"[\s\-]+")

# What the runs tried, for the report (`-s`).
TOTALS: Counter = Counter()


@dataclass
class World:
    """The rows every example starts from (created once per test, kept by every rollback)."""

    resellers: list
    subscribers: list
    balances: list
    users: list
    operator: object
    scoped: object
    card_api: object
    external_api: object


@pytest.fixture
def world(db):
    now = timezone.now()
    resellers = [ResellerFactory(name="Stateful A"), ResellerFactory(name="Stateful B")]
    templates = [
        BalanceTemplateFactory(name="Stateful USD", currency="USD"),
        BalanceTemplateFactory(name="Stateful USD private", currency="USD", is_private=True),
        BalanceTemplateFactory(name="Stateful EUR", currency="EUR", end_adjust_allowed=False),
    ]
    ends = [None, now + 20 * DAY, None]
    owners = [resellers[0], resellers[1], None]
    subscribers, balances = [], []
    for index in range(3):
        subscriber = SubscriberFactory(name=f"Stateful {index}", reseller=owners[index])
        wallet = WalletFactory(subscription__subscriber=subscriber)
        balances.append(
            BalanceFactory(
                wallet=wallet,
                resource_id=1,
                template=templates[index],
                is_main=True,
                start_time=now - 10 * DAY,
                end_time=ends[index],
            )
        )
        subscribers.append(subscriber)
    scoped = UserFactory(username="stateful-scoped", is_staff=True)
    StaffReseller.objects.create(user=scoped, reseller=resellers[0])
    return World(
        resellers=resellers,
        subscribers=subscribers,
        balances=balances,
        users=[s.user for s in subscribers],
        operator=UserFactory(username="stateful-operator", is_staff=True, is_superuser=True),
        scoped=scoped,
        card_api=ApiClientFactory(user__username="stateful-cards"),
        external_api=ApiClientFactory(user__username="stateful-external", voucher_mode="external"),
    )


def snapshot() -> dict:
    """Everything an operation may change (support.state() and what adjustments add)."""
    return {
        **state(),
        "starts": list(Balance.objects.order_by("pk").values_list("start_time", flat=True)),
        "blocked_reversed": list(
            TopUpCard.objects.order_by("pk").values_list("blocked", "reversed_at")
        ),
        "idempotency_keys": IdempotencyKey.objects.count(),
    }


class CardsAndBalances(RuleBasedStateMachine):
    world: World  # set by the test

    def __init__(self):
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self._settings = None
        self.t0 = timezone.now()
        self.references = 0
        self.known_card_pks: set[int] = set()
        w = self.world
        rows = Balance.objects.select_related("template").order_by("pk")
        balances = {
            b.pk: model.Balance(
                pk=b.pk,
                currency=b.template.currency,
                private=b.template.is_private,
                end_adjust=b.template.end_adjust_allowed,
                start=b.start_time,
                end=b.end_time,
                amount=b.amount,
            )
            for b in rows
        }
        subscribers = [
            model.Subscriber(
                pk=s.pk,
                user=s.user_id,
                reseller=s.reseller_id,
                ip="10.0.0.2" if index == 2 else "10.0.0.1",  # the first two share an address
                balance=w.balances[index].pk,
            )
            for index, s in enumerate(w.subscribers)
        ]
        self.model = Model(balances=balances, subscribers=subscribers, allow_end_in_past=False)
        TOTALS["examples"] += 1

    def teardown(self):
        if self._settings is not None:
            self._settings.disable()
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # --- helpers ------------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        self.model.now = timezone.now()
        return self.model.now

    def balance(self, who: int) -> Balance:
        """The subscriber's main balance, fresh from the database (as a request would load it)."""
        return Balance.objects.select_related("template", "wallet__subscription__subscriber").get(
            pk=self.model.subscribers[who].balance
        )

    def time_value(self, choice, now):
        """A drawn validity value as (what the service gets, what the model gets)."""
        if choice is None:
            return None, None
        kind, value = choice
        if kind == "rel":
            return parse_duration(value), Rel(value)
        moment = now + value * DAY
        return moment, moment

    def draw_pin(self, data, who: int) -> tuple[str, str, int]:
        """(what is typed, the PIN it means, who uses it): a new card's PIN with a subscriber it
        fits (reseller, currency), any card's PIN, as printed or not, a deleted card's, a random
        one with or without a valid check digit, or junk."""
        kinds = ["fit", "fit", "card", "card", "printed", "deleted", "luhn", "digits", "junk"]
        kind = data.draw(st.sampled_from(kinds))
        m = self.model
        if kind == "fit":
            fitting = [
                (pk, index)
                for pk, card in sorted(m.cards.items())
                if card.status(timezone.now()) == "new"
                for index, s in enumerate(m.subscribers)
                if card.reseller in (None, s.reseller)
                and card.currency == m.balances[s.balance].currency
            ]
            if fitting:
                pk, who = data.draw(st.sampled_from(fitting))
                return m.cards[pk].pin, m.cards[pk].pin, who
            kind = "card"
        if kind in ("card", "printed") and m.cards:
            pin = m.cards[data.draw(st.sampled_from(sorted(m.cards)))].pin
            if kind == "printed":
                separator = data.draw(st.sampled_from([" ", "-"]))
                return separator.join(pin[i : i + 4] for i in range(0, len(pin), 4)), pin, who
            return pin, pin, who
        if kind == "deleted" and m.deleted_pins:
            pin = data.draw(st.sampled_from(m.deleted_pins))
        elif kind == "luhn":
            pin = model.luhn_complete(data.draw(st.text("0123456789", min_size=4, max_size=7)))
        elif kind == "junk":
            pin = data.draw(st.sampled_from(JUNK_PINS))
        else:
            pin = data.draw(st.text("0123456789", min_size=5, max_size=8))
        return pin, _SEPARATORS.sub("", pin), who

    def attempt(self, expected: Fail | None, call, label: str):
        """Run `call`; it must raise exactly the predicted error and change nothing (but the
        audit event of a failed redemption), or succeed when the model says it must."""
        before = snapshot() if expected is not None else None
        try:
            result = call()
        except WalletError as error:
            if expected is None:
                raise AssertionError(
                    f"{label}: the model expected success, the service raised "
                    f"{type(error).__name__} ({error.rule or '-'}): {error.message}"
                ) from error
            assert type(error) is expected.error, (
                f"{label}: expected {expected.error.__name__}, got {type(error).__name__}: "
                f"{error.message}"
            )
            if expected.rule is not None:
                assert error.rule == expected.rule, f"{label}: rule {error.rule!r}, {error.message}"
            if expected.field is not None:
                assert error.field == expected.field, f"{label}: field {error.field!r}"
            assert error.result == expected.error.result
            after = snapshot()
            audit = after.pop("card_events") - before.pop("card_events")
            assert audit == (1 if expected.audited else 0), f"{label}: {audit} audit events"
            assert after == before, f"{label}: the refused operation changed something"
            why = error.rule or error.message.split(":")[0][:48]
            TOTALS[f"{label}: refused {type(error).__name__} ({why})"] += 1
            return None
        assert expected is None, (
            f"{label}: the model expected {expected.error.__name__} "
            f"({expected.rule or expected.field or '-'}), the service succeeded"
        )
        TOTALS[f"{label}: ok"] += 1
        return result

    def selection(self, data, kinds=("subset", "subset", "series", "all", "none", "in-empty")):
        """A Mass Edit selection as (queryset, the card ids the model takes it to select)."""
        kind = data.draw(st.sampled_from(kinds))
        if kind == "series":
            series = data.draw(st.sampled_from(SERIES))
            pks = {pk for pk, c in self.model.cards.items() if c.series == series}
            return TopUpCard.objects.filter(series=series), pks
        if kind == "all":
            return TopUpCard.objects.all(), set(self.model.cards)
        if kind == "none":
            return TopUpCard.objects.none(), set()
        if kind == "in-empty" or not self.known_card_pks:
            return TopUpCard.objects.filter(pk__in=[]), set()
        # Any cards ever made: deleted ones and activated ones (never edited) included.
        pks = data.draw(st.sets(st.sampled_from(sorted(self.known_card_pks)), max_size=6))
        return TopUpCard.objects.filter(pk__in=pks), pks

    # --- rules --------------------------------------------------------------------------------

    @initialize(allow=st.booleans())
    def end_time_in_the_past(self, allow):
        """E5: ALLOW_END_TIME_IN_PAST on or off for the whole example."""
        self._settings = override_settings(ALLOW_END_TIME_IN_PAST=allow)
        self._settings.enable()
        self.model.allow_end_in_past = allow

    @initialize(batches=st.lists(BATCH, min_size=1, max_size=3))
    def first_batches(self, batches):
        """Cards to work on from the first step."""
        for batch in batches:
            self.generate(**batch)

    @rule(**BATCH_ARGS)
    def generate(self, series, quantity, pin_length, amount, currency, owner, expiry_days, scoped):
        """Generate Top-Up Cards: refused when the expiry is past, when a scoped operator names
        another company, when the series belongs to another reseller, or when the PINs of that
        length would become guessable (docs/cards.md: 5-digit PINs allow 1 live card, 6-digit
        10, 7-digit 100)."""
        w, m = self.world, self.model
        reseller = None if owner is None else w.resellers[owner]
        expires_at = self.t0 + expiry_days * DAY
        now = self.now()
        expected = m.predict_generate(
            series=series,
            quantity=quantity,
            pin_length=pin_length,
            reseller=reseller.pk if reseller else None,
            expires_at=expires_at,
            scoped_to=w.resellers[0].pk if scoped else None,
            now=now,
        )
        first = m.next_number(series)
        result = self.attempt(
            expected,
            lambda: card_batch_generate(
                series=series,
                quantity=quantity,
                amount=Decimal(amount),
                currency=currency,
                pin_length=pin_length,
                reseller=reseller,
                expires_at=expires_at,
                actor=w.scoped if scoped else w.operator,
            ),
            "generate",
        )
        if result is None:
            return
        numbers = dict(TopUpCard.objects.filter(batch=result.batch).values_list("number", "pk"))
        assert sorted(numbers) == list(range(first, first + quantity)), "serials not sequential"
        assert len(set(result.pins)) == quantity
        assert all(len(p) == pin_length and model.luhn_ok(p) for p in result.pins)
        self.known_card_pks.update(numbers.values())
        m.apply_generate(
            [
                Card(
                    pk=numbers[first + offset],
                    series=series,
                    number=first + offset,
                    pin=pin,
                    amount=Decimal(amount),
                    currency=currency,
                    reseller=reseller.pk if reseller else None,
                    expires_at=expires_at,
                )
                for offset, pin in enumerate(result.pins)
            ]
        )

    @rule(data=st.data(), who=st.integers(0, 2))
    def redeem_in_the_panel(self, data, who):
        w, m = self.world, self.model
        typed, pin, who = self.draw_pin(data, who)
        subscriber = m.subscribers[who]
        balance = self.balance(who)
        self.now()
        expected = m.predict_redeem(
            subscriber=subscriber, pin=pin, channel="panel", actor=subscriber.user, ip=subscriber.ip
        )
        fail = expected if isinstance(expected, Fail) else None
        result = self.attempt(
            fail,
            lambda: card_redeem(
                pin=typed,
                balance=balance,
                subscriber=w.subscribers[who],
                actor=w.users[who],
                channel=Channel.PANEL,
                ip_address=subscriber.ip,
            ),
            "panel redeem",
        )
        if fail is not None:
            m.record_failed_redemption(
                fail, subscriber, channel="panel", actor=subscriber.user, ip=subscriber.ip
            )
            return
        card, replay = expected
        assert (result.card.pk, result.replayed) == (card.pk, replay)
        entry_pk = result.card.ledger_entry_id
        m.apply_redeem(card, subscriber, entry_pk=entry_pk, actor=subscriber.user)
        assert result.balance.amount == m.balances[subscriber.balance].amount

    @rule(
        data=st.data(),
        who=st.integers(0, 2),
        amount_kind=st.sampled_from(["card", "card", "card", "other", "zero", "fraction"]),
        end=st.one_of(st.none(), st.none(), ENDS),
    )
    def rest_card_top_up(self, data, who, amount_kind, end):
        """PUT …/topup in card mode: the Voucher is a card's PIN, Amount must be the card's;
        a retry (same client, card, balance, amount) answers the original success."""
        w, m = self.world, self.model
        typed, pin, who = self.draw_pin(data, who)
        subscriber = m.subscribers[who]
        card = m.card_by_pin(pin)
        amount = {
            "card": card.amount if card else Decimal("10.00"),
            "other": Decimal("7.77"),
            "zero": Decimal("0"),
            "fraction": Decimal("1.005"),
        }[amount_kind]
        balance = self.balance(who)
        now = self.now()
        end_value, end_model = self.time_value(end, now)
        actor = w.card_api.user
        model_balance = m.balances[subscriber.balance]
        new_end = None
        if amount <= 0:
            expected = Fail(BadData, rule="T1")
        elif not pin:
            expected = Fail(BadData, rule="T2")
        elif m.check_amount(model_balance, amount):
            expected = m.check_amount(model_balance, amount)
        else:
            expected = None
            if end is not None:
                new_end = m.end_rule(model_balance, end_model, via_topup=True)
                expected = new_end if isinstance(new_end, Fail) else None
            if expected is None:
                expected = m.predict_redeem(
                    subscriber=subscriber,
                    pin=pin,
                    channel="rest",
                    actor=actor.pk,
                    ip=None,
                    expected_amount=amount,
                    allow_replay=True,
                )
        fail = expected if isinstance(expected, Fail) else None
        result = self.attempt(
            fail,
            lambda: card_topup(
                pin=typed, balance=balance, amount=amount, end_time=end_value, actor=actor
            ),
            "REST card top-up",
        )
        if fail is not None:
            m.record_failed_redemption(fail, subscriber, channel="rest", actor=actor.pk, ip=None)
            return
        card, replay = expected
        assert (result.card.pk, result.replayed) == (card.pk, replay)
        if replay:
            TOTALS["REST card top-up: replayed"] += 1
            return
        m.apply_redeem(card, subscriber, entry_pk=result.card.ledger_entry_id, actor=actor.pk)
        if end is not None:
            model_balance.end = new_end
            m.balance_events["end_time"] += 1

    @rule(
        data=st.data(),
        who=st.integers(0, 2),
        reference_kind=st.sampled_from(["new", "new", "retry", "retry", "other", "reuse", "bad"]),
        amount=st.sampled_from(["5.00", "0.20", "12.50", "0.01", "0", "-1", "1.001"]),
        end=st.one_of(st.none(), st.none(), ENDS),
    )
    def rest_external_top_up(self, data, who, reference_kind, amount, end):
        """PUT …/topup in external mode: the Voucher is a trusted system's reference, single-use;
        the retry of the same top-up replays, any other reuse is 19."""
        w, m = self.world, self.model
        amount = Decimal(amount)
        if reference_kind in ("retry", "other", "reuse") and m.external:
            reference = data.draw(st.sampled_from(sorted(m.external)))
            used_balance, used_amount, _ = m.external[reference]
            if reference_kind in ("retry", "other"):  # the same top-up, or its amount changed
                who = next(i for i, s in enumerate(m.subscribers) if s.balance == used_balance)
                amount = used_amount + (Decimal("1.00") if reference_kind == "other" else 0)
        elif reference_kind == "bad":
            reference = data.draw(st.sampled_from(["", "x" * 65, "line\nbreak"]))
        else:
            self.references += 1
            reference = f"EXT-{self.references:04d}"
        subscriber = m.subscribers[who]
        balance = self.balance(who)
        now = self.now()
        end_value, end_model = self.time_value(end, now)
        model_balance = m.balances[subscriber.balance]
        expected = m.predict_external(
            model_balance, reference=reference, amount=amount, end=end_model
        )
        fail = expected if isinstance(expected, Fail) else None
        result = self.attempt(
            fail,
            lambda: balance_topup_external(
                client=w.external_api,
                balance=balance,
                amount=amount,
                voucher=reference,
                end_time=end_value,
                actor=w.external_api.user,
                channel=Channel.REST,
            ),
            "REST external top-up",
        )
        if fail is not None:
            return
        outcome, detail = expected
        if outcome == "replay":
            assert result.replayed and result.entry.pk == detail
            TOTALS["REST external top-up: replayed"] += 1
            return
        assert not result.replayed
        m.apply_topup(
            model_balance,
            amount=amount,
            entry_pk=result.entry.pk,
            actor=w.external_api.user_id,
            new_end=detail,
        )
        m.external[reference] = (model_balance.pk, amount, result.entry.pk)
        assert result.balance.amount == model_balance.amount

    @rule(
        who=st.integers(0, 2),
        adjust_type=st.sampled_from([1, 1, 2, 2, 2, 3]),
        amount_kind=st.sampled_from(["0.07", "0", "0.01", "2.50", "40.00", "0.001", "all", "over"]),
        reason=st.sampled_from(["Goodwill", "Goodwill", "Goodwill", " "]),
        start=st.one_of(st.none(), st.none(), STARTS),
        end=st.one_of(st.none(), st.none(), ENDS),
        key=st.sampled_from([None, None, "key-1", "key-2"]),
    )
    def adjust(self, who, adjust_type, amount_kind, reason, start, end, key):
        """PUT …/adjustment: credit or debit (beyond the balance: 10) with validity changes,
        optionally under an Idempotency-Key (a repeat replays, a different request is 10)."""
        w, m = self.world, self.model
        subscriber = m.subscribers[who]
        model_balance = m.balances[subscriber.balance]
        if amount_kind == "all":
            amount = model_balance.amount
        elif amount_kind == "over":
            amount = model_balance.amount + Decimal("0.01")
        else:
            amount = Decimal(amount_kind)
        balance = self.balance(who)
        now = self.now()
        start_value, start_model = self.time_value(start, now)
        end_value, end_model = self.time_value(end, now)
        fingerprint = request_fingerprint(
            balance=balance.pk,
            adjust_type=adjust_type,
            amount=amount,
            reason=reason,
            start=start_value,
            end=end_value,
        )
        expected = m.predict_adjust(
            model_balance,
            adjust_type=adjust_type,
            amount=amount,
            reason=reason,
            start=start_model,
            end=end_model,
            key=key,
            fp=fingerprint,
        )
        fail = expected if isinstance(expected, Fail) else None
        result = self.attempt(
            fail,
            lambda: balance_adjust(
                balance=balance,
                adjust_type=adjust_type,
                amount=amount,
                reason=reason,
                start_time=start_value,
                end_time=end_value,
                actor=w.operator,
                channel=Channel.REST,
                idempotency_key=key or "",
                fingerprint=fingerprint,
            ),
            "adjust",
        )
        if fail is not None:
            return
        if expected[0] == "replay":
            assert result.replayed
            TOTALS["adjust: replayed"] += 1
            return
        _, signed, validity = expected
        assert not result.replayed and (result.entry is None) == (signed == 0)
        m.apply_adjust(
            model_balance,
            signed=signed,
            validity=validity,
            start=start,
            end=end,
            entry_pk=result.entry.pk if result.entry else None,
            actor=w.operator.pk,
            key=key,
            fp=fingerprint,
        )

    @rule(
        who=st.integers(0, 2),
        start=st.one_of(st.none(), STARTS),
        end=st.one_of(st.none(), ENDS),
    )
    def change_validity(self, who, start, end):
        """An operator moves a balance's start and/or end (S1–S7, E1–E9)."""
        w, m = self.world, self.model
        model_balance = m.balances[m.subscribers[who].balance]
        now = self.now()
        start_value, start_model = self.time_value(start, now)
        end_value, end_model = self.time_value(end, now)
        expected = m.predict_validity(model_balance, start=start_model, end=end_model)
        fail = expected if isinstance(expected, Fail) else None
        result = self.attempt(
            fail,
            lambda: balance_change_validity(
                balance_id=model_balance.pk,
                start_time=start_value,
                end_time=end_value,
                actor=w.operator,
                channel=Channel.ADMIN,
                reason="Operator",
            ),
            "validity",
        )
        if fail is None:
            assert len(result) == (start is not None) + (end is not None)
            m.apply_validity(model_balance, start=start, end=end, new=expected)

    @precondition(lambda self: self.model.cards)
    @rule(
        data=st.data(),
        expires=st.sampled_from([None, None, "past", "future", "naive", "now"]),
        owner=st.sampled_from([None, None, "nobody", 0, 1]),
        blocked=st.sampled_from([None, None, True, False]),
        scoped=st.sampled_from([False, False, False, True]),
    )
    def mass_edit(self, data, expires, owner, blocked, scoped):
        """Mass Edit of a random selection: expiry (a past one is refused; "expire now" expires
        the running cards), company, block / unblock; activated cards are never changed."""
        w, m = self.world, self.model
        cards, selected = self.selection(data)
        expires_at = {
            None: None,
            "past": self.t0 - DAY,
            "future": self.t0 + 60 * DAY,
            "naive": "naive",
            "now": "now",
        }[expires]
        reseller = None
        if owner is not None:
            reseller = (None,) if owner == "nobody" else (w.resellers[owner].pk,)
        self.now()
        expected = m.predict_mass_update(
            selection=selected,
            expires_at=expires_at,
            reseller=reseller,
            blocked=blocked,
            scoped_to=w.resellers[0].pk if scoped else None,
            now=m.now,
        )
        fail = expected if isinstance(expected, Fail) else None
        reseller_value = PRESERVE
        if reseller is not None:
            reseller_value = next((r for r in w.resellers if r.pk == reseller[0]), None)
        result = self.attempt(
            fail,
            lambda: cards_mass_update(
                cards=cards,
                expires_at=(
                    PRESERVE
                    if expires_at is None
                    else dt.datetime(2031, 1, 1)  # naive: refused
                    if expires_at == "naive"
                    else EXPIRE_NOW
                    if expires_at == "now"
                    else expires_at
                ),
                reseller=reseller_value,
                blocked=PRESERVE if blocked is None else blocked,
                actor=w.scoped if scoped else w.operator,
            ),
            "mass edit",
        )
        if fail is not None:
            return
        count, changed = expected
        assert result.selected == count
        assert result.changed == {field: len(rows) for field, rows in changed.items()}
        if expires_at == "now" and changed["expires_at"]:
            # The service's own clock: every card it expired holds the same instant.
            expires_at = TopUpCard.objects.get(pk=changed["expires_at"][0].pk).expires_at
        m.apply_mass_update(changed, expires_at=expires_at, reseller=reseller, blocked=blocked)

    @precondition(lambda self: self.model.cards)
    @rule(data=st.data())
    def mass_delete(self, data):
        """Delete all of a random selection: activated cards are history and stay."""
        w, m = self.world, self.model
        # Mostly a few marked cards: deleting whole series would leave little to work on.
        kinds = ("subset", "subset", "subset", "subset", "series", "all", "none", "in-empty")
        cards, selected = self.selection(data, kinds)
        doomed = m.predict_mass_delete(selected)
        deleted = self.attempt(
            None, lambda: cards_mass_delete(cards=cards, actor=w.operator), "mass delete"
        )
        assert deleted == len(doomed)
        m.apply_mass_delete(doomed)

    @precondition(lambda self: self.model.entries or self.model.cards)
    @rule(
        data=st.data(),
        how=st.sampled_from(["entry", "entry", "card"]),
        reason=st.sampled_from(["Complaint", "Complaint", "Complaint", ""]),
    )
    def reverse(self, data, how, reason):
        """Reverse a ledger entry (a top-up or redemption; an adjustment or a reversal cannot
        be), or a card by id (only a redeemed one): a compensating entry, the card blocked."""
        w, m = self.world, self.model
        if how == "card" and m.cards:
            card = m.cards[data.draw(st.sampled_from(sorted(m.cards)))]
            if card.reversed:
                expected = Fail(AlreadyRedeemed)
            elif card.activated_by is None:
                expected = Fail(BadData, rule="")
            else:
                expected = m.predict_reverse(m.entries[card.entry], reason=reason)
            entry = m.entries.get(card.entry)
            call = lambda: card_reverse(card_id=card.pk, reason=reason, actor=w.operator)  # noqa: E731
        elif m.entries:
            entry = m.entries[data.draw(st.sampled_from(sorted(m.entries)))]
            self.reverse_entry(entry, reason, "reverse entry")
            return
        else:
            return
        self.now()
        reversal = self.attempt(expected, call, "reverse card")
        if reversal is not None:
            assert reversal.amount == -entry.amount and reversal.reverses_id == entry.pk
            m.apply_reverse(entry, reversal_pk=reversal.pk, actor=w.operator.pk)

    def reverse_entry(self, entry, reason, label):
        w, m = self.world, self.model
        expected = m.predict_reverse(entry, reason=reason)
        reversal = self.attempt(
            expected,
            lambda: entry_reverse(entry_id=entry.pk, reason=reason, actor=w.operator),
            label,
        )
        if reversal is not None:
            assert reversal.amount == -entry.amount and reversal.reverses_id == entry.pk
            m.apply_reverse(entry, reversal_pk=reversal.pk, actor=w.operator.pk)

    @precondition(
        lambda self: any(
            e.kind in ("topup", "redemption") and not e.reversed
            for e in self.model.entries.values()
        )
    )
    @rule(data=st.data())
    def reverse_after_the_money_was_spent(self, data):
        """The subscriber spends the credit (a debit of the whole balance), then an operator
        reverses it: refused, the balance would go negative, and nothing changes."""
        m = self.model
        credits = [
            pk
            for pk, e in sorted(m.entries.items())
            if e.kind in ("topup", "redemption") and not e.reversed
        ]
        entry = m.entries[data.draw(st.sampled_from(credits))]
        who = next(i for i, s in enumerate(m.subscribers) if s.balance == entry.balance)
        self.adjust(
            who=who,
            adjust_type=2,
            amount_kind="all",
            reason="Spent",
            start=None,
            end=None,
            key=None,
        )
        self.reverse_entry(entry, "Complaint", "reverse spent credit")

    @precondition(lambda self: any(self.model.failures.values()))
    @rule()
    def an_hour_passes_for_the_lockout(self):
        """Age every failed redemption by an hour: every lock and count ends (docs/panel.md)."""
        CardEvent.objects.filter(kind=CardEventKind.REDEEM_FAILED).update(
            created_at=F("created_at") - dt.timedelta(hours=1)
        )
        self.model.failures.clear()

    # --- after every step -----------------------------------------------------------------------

    @invariant()
    def the_database_agrees_with_the_model(self):
        TOTALS["steps checked"] += 1
        m = self.model
        now = timezone.now()
        db_cards = [
            (*row[:-2], bytes(row[-2]), row[-1] is not None)
            for row in TopUpCard.objects.annotate_status(at=now)
            .order_by("pk")
            .values_list(
                "pk",
                "series",
                "number",
                "status",
                "blocked",
                "expires_at",
                "reseller_id",
                "amount",
                "currency",
                "activated_by_id",
                "ledger_entry_id",
                "pin_digest",
                "reversed_at",
            )
        ]
        model_cards = [
            (
                c.pk,
                c.series,
                c.number,
                c.status(now),
                c.blocked,
                c.expires_at,
                c.reseller,
                c.amount,
                c.currency,
                c.activated_by,
                c.entry,
                pins.pin_digest(c.pin),
                c.reversed,
            )
            for _, c in sorted(m.cards.items())
        ]
        assert db_cards == model_cards
        db_balances = list(
            Balance.objects.filter(pk__in=list(m.balances))
            .order_by("pk")
            .values_list("pk", "amount", "start_time", "end_time")
        )
        assert db_balances == [
            (b.pk, b.amount, b.start, b.end) for _, b in sorted(m.balances.items())
        ]
        db_entries = list(
            LedgerEntry.objects.order_by("pk").values_list(
                "pk", "balance_id", "amount", "kind", "actor_id", "reverses_id"
            )
        )
        assert db_entries == [
            (e.pk, e.balance, e.amount, e.kind, e.actor, e.reverses)
            for _, e in sorted(m.entries.items())
        ]
        references = {
            v.reference: (v.balance_id, v.amount, v.ledger_entry_id)
            for v in ExternalVoucher.objects.all()
        }
        assert references == m.external
        assert set(IdempotencyKey.objects.values_list("key", flat=True)) == set(m.idempotency)
        assert self._counts(CardEvent) == +m.card_events
        assert self._counts(BalanceEvent) == +m.balance_events
        # The books: check_ledger (exits non-zero on a difference), and balances = ledger.
        call_command("check_ledger", stdout=StringIO(), stderr=StringIO())
        # (SQLite sums decimals as floats and Django keeps 15 significant digits of the result:
        # 0.01 comes back as 0.00999999999999801, so the totals are read to the millionth.)
        total_balances = Balance.objects.aggregate(s=Sum("amount"))["s"] or Decimal(0)
        total_ledger = LedgerEntry.objects.aggregate(s=Sum("amount"))["s"] or Decimal(0)
        assert (
            total_balances.quantize(MILLIONTH)
            == total_ledger.quantize(MILLIONTH)
            == sum(b.amount for b in m.balances.values())
        )
        # The lockout the model expects is the one redemption would apply.
        w = self.world
        for index, subscriber in enumerate(m.subscribers):
            locked = lockout.redemption_locked_until(
                subscriber=w.subscribers[index],
                actor=w.users[index],
                channel=Channel.PANEL,
                ip_address=subscriber.ip,
            )
            keys = [("subscriber", subscriber.pk), ("ip", subscriber.ip)]
            assert (locked is not None) == m.locked(keys)
        api_locked = lockout.redemption_locked_until(
            subscriber=None, actor=w.card_api.user, channel=Channel.REST, ip_address=None
        )
        assert (api_locked is not None) == (
            m.failures[("api", w.card_api.user_id)] >= model.API_CLIENT_LOCKOUT_FAILURES
        )

    @staticmethod
    def _counts(event_model) -> Counter:
        rows = event_model.objects.values("kind").annotate(n=Count("pk")).order_by()
        return Counter({row["kind"]: row["n"] for row in rows})


def test_the_services_agree_with_the_model_after_every_step(world):
    machine = type("Machine", (CardsAndBalances,), {"world": world})
    TOTALS.clear()
    started = time.monotonic()
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    elapsed = time.monotonic() - started
    print(f"\nstateful: {TOTALS['examples']} examples, {TOTALS['steps checked']} checked steps, ")
    print(f"{elapsed:.1f} s")
    for name, count in sorted(TOTALS.items()):
        print(f"  {count:6d}  {name}")
