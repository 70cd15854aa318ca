"""The cards with no block, expiry or reseller change since the window's start: their movements
read set-based, one aggregate per kind (docs/reports.md, "How it is computed")."""

from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Greatest
from django.utils import timezone

from cards.models import CardEvent, TopUpCard
from cards.models.events import CardEventKind

from ..common import as_date, trunc
from .window import Kind, Totals, Window, state_events


def _unchanged_cards(window: Window, filters: dict) -> QuerySet:
    changed = state_events(window).filter(card_id=OuterRef("pk"))
    return TopUpCard.objects.filter(~Exists(changed), **filters).order_by()


def _dormant_at(at: str) -> Case:
    """Whether the card was dormant just before the instant in its field `at`: dormant now, or
    delivered at or after it (a delivery at that very instant comes after the creation and the
    expiry, as every change does)."""
    delivered_since = CardEvent.objects.filter(
        card_id=OuterRef("pk"), kind=CardEventKind.DELIVERED, created_at__gte=OuterRef(at)
    )
    return Case(
        When(dormant=True, then=Value(True)),
        When(Exists(delivered_since), then=Value(True)),
        default=Value(False),
        output_field=BooleanField(),
    )


_NOT_DORMANT = Value(False, output_field=BooleanField())


def _aggregate(totals: Totals, cards: QuerySet, *, at: str, kind: str, sign: int, blocked, dormant):
    """One aggregate: each card of `cards` moves its face value (times `sign`) at `at`."""
    rows = (
        cards.annotate(day=trunc(at, "day"), was_blocked=blocked, was_dormant=dormant)
        .values("day", "currency", "reseller_id", "series", "was_blocked", "was_dormant")
        .annotate(cards=Count("id"), amount=Sum("amount"))
    )
    for row in rows:
        key = (
            as_date(row["day"]),
            row["currency"],
            row["reseller_id"],
            row["series"],
            bool(row["was_blocked"]),
            bool(row["was_dormant"]),
            kind,
        )
        totals.add(key, sign * row["cards"], sign * row["amount"])


def _deliveries(totals: Totals, window: Window, filters: dict, flag_at_creation) -> None:
    """The unchanged cards delivered in the window while owed: from dormant to not, inside
    liability. Read from the `delivered` events (the (kind, created_at) index), never from every
    card. Owed then: a dormant card cannot have been redeemed, so only its expiry can have
    passed (at the delivery's instant it comes first)."""
    unchanged = ~Exists(state_events(window).filter(card_id=OuterRef("card_id")))
    deliveries = (
        CardEvent.objects.filter(
            window.holds("created_at"),
            unchanged,
            kind=CardEventKind.DELIVERED,
            card__expires_at__gt=F("created_at"),
            **{f"card__{name}": value for name, value in filters.items()},
        )
        .annotate(
            day=trunc("created_at", "day"),
            currency=F("card__currency"),
            reseller_id=F("card__reseller_id"),
            series=F("card__series"),
            was_blocked=flag_at_creation("card__"),
        )
        .order_by()
        .values("day", "currency", "reseller_id", "series", "was_blocked")
        .annotate(cards=Count("id"), amount=Sum("card__amount"))
    )
    for row in deliveries:
        key = (as_date(row["day"]), row["currency"], row["reseller_id"], row["series"])
        flag = bool(row["was_blocked"])
        totals.add((*key, flag, True, Kind.DELIVERED), -row["cards"], -row["amount"])
        totals.add((*key, flag, False, Kind.DELIVERED), row["cards"], row["amount"])


def unchanged_movements(totals: Totals, window: Window, filters: dict) -> None:
    """A card unchanged since the window's start has its current expiry, reseller and flag in
    the whole window, except that before its redemption it was not blocked (it could be redeemed)
    and that its reversal blocked it."""
    cards = _unchanged_cards(window, filters)
    never_redeemed = Q(activated_at__isnull=True)
    flag = F("blocked")

    def flag_before_redemption(prefix: str = "") -> Case:
        # Before a redemption the flag was off; a card never redeemed has had its flag since.
        return Case(
            When(Q(**{f"{prefix}activated_at__isnull": True}), then=F(f"{prefix}blocked")),
            default=Value(False),
            output_field=BooleanField(),
        )

    _aggregate(
        totals,
        cards.filter(window.holds("created_at")),
        at="created_at",
        kind=Kind.ISSUED,
        sign=1,
        blocked=flag_before_redemption(),
        dormant=_dormant_at("created_at"),
    )
    _deliveries(totals, window, filters, flag_before_redemption)
    # Breakage at the expiry, or at the creation of a card created already expired (two
    # conditions, so PostgreSQL reads the expiry's partial index and the creation's index).
    expiring = Q(window.holds("expires_at"), created_at__lt=F("expires_at")) | Q(
        window.holds("created_at"), expires_at__lte=F("created_at")
    )
    _aggregate(
        totals,
        cards.filter(never_redeemed)
        .filter(expiring)
        .alias(broken_at=Greatest("created_at", "expires_at")),
        at="broken_at",
        kind=Kind.BREAKAGE,
        sign=-1,
        blocked=flag,
        dormant=_dormant_at("broken_at"),
    )
    _aggregate(
        totals,
        cards.filter(window.holds("activated_at")),
        at="activated_at",
        kind=Kind.REDEEMED,
        sign=-1,
        blocked=Value(False, output_field=BooleanField()),
        dormant=_NOT_DORMANT,  # a dormant card cannot be redeemed
    )
    # Reversed cards are few: read one by one. Owed again from the reversal (blocked by it),
    # broken at the expiry or, when that passed before the reversal, at the reversal itself.
    reversed_cards = cards.filter(reversed_at__isnull=False, reversed_at__lt=window.until)
    if window.since is not None:
        # Found without reading every card: those reversed in the window by their `reversed`
        # event (written after `reversed_at`, in the same transaction: the (kind, created_at)
        # index), those reversed before it whose expiry falls in it by the expiry's index.
        # The ids as a list, so PostgreSQL ORs the two indexes instead of scanning the cards.
        reversals = list(
            CardEvent.objects.filter(
                kind=CardEventKind.REVERSED, created_at__gte=window.since, card_id__isnull=False
            ).values_list("card_id", flat=True)
        )
        reversed_cards = reversed_cards.filter(
            Q(pk__in=reversals, reversed_at__gte=window.since) | window.holds("expires_at")
        )
    for card in reversed_cards.values(
        "amount", "currency", "reseller_id", "series", "blocked", "reversed_at", "expires_at"
    ):
        # Redeemed before, so delivered before: never dormant in the window.
        key = (card["currency"], card["reseller_id"], card["series"], card["blocked"], False)
        if window.contains(card["reversed_at"]):
            day = timezone.localtime(card["reversed_at"]).date()
            totals.add((day, *key, Kind.REVERSED), 1, card["amount"])
        broken_at = max(card["reversed_at"], card["expires_at"])
        if window.contains(broken_at):
            day = timezone.localtime(broken_at).date()
            totals.add((day, *key, Kind.BREAKAGE), -1, -card["amount"])
