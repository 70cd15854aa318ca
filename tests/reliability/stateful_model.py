"""The in-memory model that tests/reliability/test_stateful.py holds the real services against.

Plain Python written from docs/ (cards.md, panel.md, rest-api.md, balance-rules.md), not from
the services: cards, balances, the ledger, external references, idempotency keys, the redemption
lockout and the audit counts. Each
`predict_*` method says what one operation must do: either a `Fail` (the typed error and rule it
must raise, and whether it is audited as a failed redemption) or the new values, which the machine
applies with `apply_*` only after the real call succeeded. It reads no database.
"""

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from cards import exceptions as card_errors
from wallets import exceptions as wallet_errors

LOCKOUT_FAILURES = 5  # docs/panel.md: five wrong codes lock a subscriber (panel, per API client)
ADDRESS_LOCKOUT_FAILURES = 50  # a client address: holds only those who failed themselves
API_CLIENT_LOCKOUT_FAILURES = 250  # an API client as a whole
GUESSES = {card_errors.CardNotFound, card_errors.CardCodeInvalid}  # the only failures counted
PIN_SPACE_SHARE = 10_000  # docs/cards.md: live cards of one length ≤ 1 in 10,000 of its PINs
RELATIVE = {"P1D": dt.timedelta(days=1), "P1W": dt.timedelta(weeks=1), "P4W": dt.timedelta(weeks=4)}


@dataclass(frozen=True)
class Rel:
    """A relative validity value (ISO 8601 duration, rule E7)."""

    text: str

    def after(self, moment: dt.datetime) -> dt.datetime:
        return moment + RELATIVE[self.text]


@dataclass(frozen=True)
class Fail:
    """An operation that must raise exactly `error` (with `rule` / `field` when given)."""

    error: type
    rule: str | None = None
    field: str | None = None
    audited: bool = False
    """A failed redemption: one `redeem_failed` audit event is written, nothing else."""


@dataclass
class Card:
    pk: int
    series: str
    number: int
    pin: str
    amount: Decimal
    currency: str
    reseller: int | None
    expires_at: dt.datetime
    blocked: bool = False
    activated_by: int | None = None
    entry: int | None = None
    reversed: bool = False

    @property
    def pin_length(self) -> int:
        return len(self.pin)

    def status(self, now: dt.datetime) -> str:
        if self.activated_by is not None:
            return "activated"
        if self.blocked:
            return "blocked"
        if self.expires_at <= now:
            return "expired"
        return "new"

    def live(self, now: dt.datetime) -> bool:
        """Counts against the PIN space: not redeemed and not expired (blocked ones count)."""
        return self.activated_by is None and self.expires_at > now


@dataclass
class Balance:
    pk: int
    currency: str
    private: bool
    end_adjust: bool
    start: dt.datetime
    end: dt.datetime | None
    amount: Decimal = Decimal("0")

    def live(self, now: dt.datetime) -> bool:
        return self.start <= now and (self.end is None or now < self.end)


@dataclass(frozen=True)
class Subscriber:
    pk: int
    user: int
    reseller: int | None
    ip: str
    balance: int


@dataclass
class Entry:
    pk: int
    balance: int
    amount: Decimal
    kind: str
    actor: int | None
    reverses: int | None = None
    reversed: bool = False


@dataclass
class Model:
    balances: dict[int, Balance]
    subscribers: list[Subscriber]
    allow_end_in_past: bool
    cards: dict[int, Card] = field(default_factory=dict)
    entries: dict[int, Entry] = field(default_factory=dict)
    external: dict[str, tuple[int, Decimal, int]] = field(default_factory=dict)
    """reference → (balance, amount, ledger entry) of each used external reference."""
    idempotency: dict[str, str] = field(default_factory=dict)
    """Idempotency-Key → fingerprint of the adjustment it answered."""
    failures: Counter = field(default_factory=Counter)
    """Failed redemptions counted towards a lock: ("subscriber", pk), ("ip", ip), ("api", pk)."""
    card_events: Counter = field(default_factory=Counter)
    balance_events: Counter = field(default_factory=Counter)
    deleted_pins: list[str] = field(default_factory=list)
    series_owners: dict[str, int | None] = field(default_factory=dict)
    """The reseller that first used each series (docs/cards.md): its cards only go into it."""

    # --- cards ------------------------------------------------------------------------------

    def card_by_pin(self, pin: str) -> Card | None:
        return next((c for c in self.cards.values() if c.pin == pin), None)

    def next_number(self, series: str) -> int:
        """Serials continue after the highest existing card of the series (docs/cards.md)."""
        return max((c.number for c in self.cards.values() if c.series == series), default=0) + 1

    def predict_generate(
        self, *, series, quantity, pin_length, reseller, expires_at, scoped_to, now
    ) -> Fail | None:
        """The failure, or None when the batch must be generated."""
        if expires_at <= now:
            return Fail(card_errors.GenerationError, field="expires_at")
        if scoped_to is not None and reseller != scoped_to:
            return Fail(card_errors.GenerationError, field="reseller")
        if self.series_owners.get(series, reseller) != reseller:
            return Fail(card_errors.GenerationError, field="series")
        live = sum(1 for c in self.cards.values() if c.pin_length == pin_length and c.live(now))
        if live + quantity > 10 ** (pin_length - 1) // PIN_SPACE_SHARE:
            return Fail(card_errors.GenerationError, field="pin_length")
        return None

    def apply_generate(self, cards: list[Card]) -> None:
        for card in cards:
            self.cards[card.pk] = card
            self.series_owners.setdefault(card.series, card.reseller)
        self.card_events["generated"] += 1

    def predict_mass_update(self, *, selection, expires_at, reseller, blocked, scoped_to, now):
        """(selected, changed per field) or the failure. `None` in a field means preserve."""
        if expires_at == "naive":
            return Fail(card_errors.CardEditError, field="expires_at")
        if isinstance(expires_at, dt.datetime) and expires_at <= now:
            return Fail(card_errors.CardEditError, field="expires_at")  # only "expire now"
        if reseller is not None and scoped_to is not None and reseller[0] != scoped_to:
            return Fail(card_errors.CardPermissionDenied, field="reseller")
        target = [self.cards[pk] for pk in sorted(selection) if pk in self.cards]
        target = [c for c in target if c.activated_by is None]
        changed = {}
        if expires_at == "now":  # expire now: the cards still running
            changed["expires_at"] = [c for c in target if c.expires_at > now]
        elif expires_at is not None:
            changed["expires_at"] = [c for c in target if c.expires_at != expires_at]
        if reseller is not None:
            changed["reseller"] = [c for c in target if c.reseller != reseller[0]]
        if blocked is not None:
            changed["blocked"] = [c for c in target if c.blocked != blocked]
        return len(target), changed

    def apply_mass_update(self, changed, *, expires_at, reseller, blocked) -> None:
        for card in changed.get("expires_at", []):
            card.expires_at = expires_at
            self.card_events["edited"] += 1
        for card in changed.get("reseller", []):
            card.reseller = reseller[0]
            self.card_events["edited"] += 1
        for card in changed.get("blocked", []):
            card.blocked = blocked
            self.card_events["blocked" if blocked else "unblocked"] += 1

    def predict_mass_delete(self, selection) -> list[Card]:
        return [
            self.cards[pk]
            for pk in sorted(selection)
            if pk in self.cards and self.cards[pk].activated_by is None
        ]

    def apply_mass_delete(self, cards: list[Card]) -> None:
        for card in cards:
            del self.cards[card.pk]
            self.deleted_pins.append(card.pin)
            self.card_events["deleted"] += 1

    # --- redemption (panel) and card top-up (REST, card mode) ---------------------------------

    def _lock_keys(self, subscriber: Subscriber, *, channel, actor, ip) -> list[tuple]:
        """The own key, then the shared key if any (docs/panel.md)."""
        if channel == "rest":
            return [("api-subscriber", actor, subscriber.pk), ("api", actor)]
        return [("subscriber", subscriber.pk)] + ([("ip", ip)] if ip else [])

    def locked(self, keys: list[tuple]) -> bool:
        own, *shared = keys
        if self.failures[own] >= LOCKOUT_FAILURES:
            return True
        for key in shared:
            if key[0] == "api" and self.failures[key] >= API_CLIENT_LOCKOUT_FAILURES:
                return True
            if (
                key[0] == "ip"
                and self.failures[own]
                and self.failures[key] >= ADDRESS_LOCKOUT_FAILURES
            ):
                return True
        return False

    def predict_redeem(
        self, *, subscriber, pin, channel, actor, ip, expected_amount=None, allow_replay=False
    ):
        """The card credited (and whether it is a replay), or the failure."""
        keys = self._lock_keys(subscriber, channel=channel, actor=actor, ip=ip)
        balance = self.balances[subscriber.balance]

        def failed(error):
            return Fail(error, audited=True)

        if self.locked(keys):
            return failed(card_errors.RedemptionLocked)
        if not (5 <= len(pin) <= 20 and pin.isascii() and pin.isdigit()):
            return failed(card_errors.CardCodeInvalid)
        card = self.card_by_pin(pin)
        if card is None:
            return failed(card_errors.CardNotFound if luhn_ok(pin) else card_errors.CardCodeInvalid)
        if card.activated_by is not None:
            entry = self.entries[card.entry]
            if (
                allow_replay
                and not card.reversed  # a reversed redemption is not a success to repeat
                and entry.balance == balance.pk
                and entry.actor == actor
                and (expected_amount is None or expected_amount == card.amount)
            ):
                return card, True
            return failed(card_errors.CardAlreadyRedeemed)
        if card.blocked:
            return failed(card_errors.CardBlocked)
        if card.expires_at <= self.now:
            return failed(card_errors.CardExpired)
        if card.reseller is not None and card.reseller != subscriber.reseller:
            return failed(card_errors.CardWrongReseller)
        if card.currency != balance.currency:
            return failed(card_errors.CardCurrencyMismatch)
        if expected_amount is not None and expected_amount != card.amount:
            return failed(card_errors.CardAmountMismatch)
        if not balance.live(self.now):
            return Fail(wallet_errors.BadData, rule="")  # a balance rule: not a card failure
        return card, False

    def record_failed_redemption(self, fail: Fail, subscriber, *, channel, actor, ip) -> None:
        if not fail.audited:
            return
        self.card_events["redeem_failed"] += 1
        if fail.error in GUESSES:  # a card that exists, or a refusal under a lock, doesn't count
            for key in self._lock_keys(subscriber, channel=channel, actor=actor, ip=ip):
                self.failures[key] += 1

    def apply_redeem(self, card: Card, subscriber: Subscriber, *, entry_pk, actor) -> None:
        self._credit(subscriber.balance, card.amount, "redemption", entry_pk, actor)
        card.activated_by = subscriber.pk
        card.entry = entry_pk
        self.card_events["redeemed"] += 1
        # A success clears the subscriber's own counts only (panel, and with each API client).
        for key in list(self.failures):
            if key[0] in ("subscriber", "api-subscriber") and key[-1] == subscriber.pk:
                self.failures[key] = 0

    # --- balances: validity, top-up, adjustment, reversal -----------------------------------

    def end_rule(self, balance: Balance, end, *, via_topup: bool) -> Fail | dt.datetime:
        """E1, E4, E7, E9 for a simple, non-aggregated balance: the new end or the failure."""
        if not balance.end_adjust:
            return Fail(wallet_errors.BadData, rule="E1")
        if balance.private and not via_topup:
            return Fail(wallet_errors.BadData, rule="E9")
        if isinstance(end, Rel):
            if balance.end is None:
                return Fail(wallet_errors.BadData, rule="E7")
            new_end = end.after(balance.end)
        else:
            new_end = end
        if new_end <= balance.start:
            return Fail(wallet_errors.BadData, rule="E4")
        if new_end <= self.now:
            if isinstance(end, Rel):
                return Fail(wallet_errors.BadData, rule="E7")
            if not self.allow_end_in_past:
                return Fail(wallet_errors.BadData, rule="E4")
        return new_end

    def start_rule(self, balance: Balance, start) -> Fail | dt.datetime:
        """S3, S4, S7 for a simple balance: the new start or the failure."""
        if balance.private:
            return Fail(wallet_errors.BadData, rule="S7")
        if isinstance(start, Rel):
            return Fail(wallet_errors.BadData, rule="S4")
        if start >= balance.start:
            return Fail(wallet_errors.BadData, rule="S3")
        return start

    def predict_validity(self, balance: Balance, *, start, end) -> Fail | tuple:
        """(new start, new end) after a start and/or end change, start first (one transaction)."""
        new_start, new_end = balance.start, balance.end
        if start is not None:
            new_start = self.start_rule(balance, start)
            if isinstance(new_start, Fail):
                return new_start
        if end is not None:
            moved = Balance(**{**balance.__dict__, "start": new_start})
            new_end = self.end_rule(moved, end, via_topup=False)
            if isinstance(new_end, Fail):
                return new_end
        return new_start, new_end

    def apply_validity(self, balance: Balance, *, start, end, new) -> None:
        if start is not None:
            balance.start = new[0]
            self.balance_events["start_time"] += 1
        if end is not None:
            balance.end = new[1]
            self.balance_events["end_time"] += 1

    def check_amount(self, balance: Balance, amount: Decimal, *, rule="T1") -> Fail | None:
        if amount <= 0:
            return Fail(wallet_errors.BadData, rule=rule)
        if -amount.normalize().as_tuple().exponent > 2:  # every template here has precision 2
            return Fail(wallet_errors.BadData, rule="T6")
        return None

    def _credit(self, balance_pk, amount, kind, entry_pk, actor, reverses=None) -> None:
        balance = self.balances[balance_pk]
        balance.amount += amount
        self.entries[entry_pk] = Entry(entry_pk, balance_pk, amount, kind, actor, reverses)
        self.balance_events[kind] += 1

    def predict_external(self, balance: Balance, *, reference, amount, end):
        """("replay", entry) or ("credit", new end or None), or the failure."""
        if not reference or len(reference) > 64 or not reference.isprintable():
            return Fail(wallet_errors.BadData, rule="T2")
        failure = self.check_amount(balance, amount)
        if failure:
            return failure
        if reference in self.external:
            used_balance, used_amount, entry = self.external[reference]
            if self.entries[entry].reversed:  # the operator took it back: no replay
                return Fail(wallet_errors.AlreadyRedeemed)
            if used_balance == balance.pk and used_amount == amount:
                return "replay", entry
            return Fail(wallet_errors.AlreadyRedeemed)
        if not balance.live(self.now):
            return Fail(wallet_errors.BadData, rule="")
        new_end = None
        if end is not None:
            new_end = self.end_rule(balance, end, via_topup=True)
            if isinstance(new_end, Fail):
                return new_end
        return "credit", new_end

    def apply_topup(self, balance: Balance, *, amount, entry_pk, actor, new_end) -> None:
        self._credit(balance.pk, amount, "topup", entry_pk, actor)
        if new_end is not None:
            balance.end = new_end
            self.balance_events["end_time"] += 1

    def predict_adjust(self, balance: Balance, *, adjust_type, amount, reason, start, end, key, fp):
        """("replay",) or ("adjust", signed amount, (new start, new end)), or the failure."""
        if key:
            if key in self.idempotency:
                if self.idempotency[key] == fp:
                    return ("replay",)
                return Fail(wallet_errors.BadData, rule="")
        if adjust_type not in (1, 2):
            return Fail(wallet_errors.BadData, rule="")
        timed = start is not None or end is not None
        if amount < 0 or (amount == 0 and not timed):
            return Fail(wallet_errors.BadData, rule="")
        if not reason.strip():
            return Fail(wallet_errors.BadData, rule="")
        if amount and self.check_amount(balance, amount):
            return self.check_amount(balance, amount)
        validity = self.predict_validity(balance, start=start, end=end)
        if isinstance(validity, Fail):
            return validity
        signed = amount if adjust_type == 1 else -amount
        if balance.amount + signed < 0:
            return Fail(wallet_errors.BadData, rule="")  # debit beyond the balance
        return "adjust", signed, validity

    def apply_adjust(self, balance, *, signed, validity, start, end, entry_pk, actor, key, fp):
        self.apply_validity(balance, start=start, end=end, new=validity)
        if signed:
            self._credit(balance.pk, signed, "adjustment", entry_pk, actor)
        if key:
            self.idempotency[key] = fp

    def predict_reverse(self, entry: Entry, *, reason: str) -> Fail | None:
        card = self.card_of_entry(entry.pk)
        if card is not None and card.reversed:
            return Fail(wallet_errors.AlreadyRedeemed)
        if not reason.strip():
            return Fail(wallet_errors.BadData, rule="")
        if entry.kind not in ("topup", "redemption"):
            return Fail(wallet_errors.BadData, rule="")
        if entry.reversed:
            return Fail(wallet_errors.AlreadyRedeemed)
        if self.balances[entry.balance].amount < entry.amount:
            return Fail(wallet_errors.BadData, rule="")  # already spent: would go negative
        return None

    def apply_reverse(self, entry: Entry, *, reversal_pk, actor) -> None:
        self._credit(entry.balance, -entry.amount, "reversal", reversal_pk, actor, entry.pk)
        entry.reversed = True
        card = self.card_of_entry(entry.pk)
        if card is not None:
            card.reversed = True
            card.blocked = True
            self.card_events["reversed"] += 1

    def card_of_entry(self, entry_pk: int) -> Card | None:
        return next((c for c in self.cards.values() if c.entry == entry_pk), None)

    now: dt.datetime = None
    """The time of the operation being predicted (set by the machine before each call)."""


def luhn_ok(pin: str) -> bool:
    """The Luhn check, written out (docs/cards.md: the last digit of a PIN is a check digit)."""
    total = 0
    for index, char in enumerate(reversed(pin)):
        digit = int(char)
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return len(pin) >= 2 and total % 10 == 0


def luhn_complete(payload: str) -> str:
    """`payload` with the Luhn check digit appended."""
    return next(payload + d for d in "0123456789" if luhn_ok(payload + d))
