"""The event-sourced view of the cards: every change of what a card adds to liability, as a
movement (reports/README.md, "Movements").

A card's state over time is rebuilt from its row (creation, redemption and reversal times, its
current expiry, reseller and flag) and its audit events (cards/events.py, read through its key
classes only): Mass Edit's `edited` / `blocked` / `unblocked` events give a field's value before
each change (`old`), a `deleted` event the card as it was when it went. A field's value at an
instant is the `old` of its earliest change at or after the instant, else the value the card has
now (or had when deleted). From that state every instant at which the card enters or leaves
liability, or changes reseller or flag while in it, is a movement:

| kind        | when                                                   | effect on liability     |
|-------------|--------------------------------------------------------|-------------------------|
| issued      | the card is created                                    | + face value            |
| redeemed    | a subscriber redeems it                                | −                       |
| reversed    | an operator reverses its redemption                    | + (owed again, blocked) |
| breakage    | its expiry passes unredeemed                           | −                       |
| written_off | Mass Edit moves its expiry to now or earlier           | −                       |
| reinstated  | Mass Edit gives an expired card a later expiry         | +                       |
| deleted     | Delete all deletes it while owed                       | −                       |
| moved       | Mass Edit moves it to another reseller while owed      | − old, + new reseller   |
| blocked     | blocked while owed (stays in liability, "of which")    | − unblocked, + blocked  |
| unblocked   | unblocked while owed                                   | − blocked, + unblocked  |
| delivered   | its box is recorded delivered while owed               | − dormant, + not        |

Liability as of an instant is the sum of every movement before it; breakage and the roll-forward
are sums of movements in a period. Cards with no block, expiry or reseller change since the
window's start are read set-based (one aggregate per kind); the others, and the deleted cards,
are replayed here one by one from their events (a few per day in practice).

A card generated dormant (docs/printing.md) is dormant until its `delivered` event: the flag a
movement carries beside `blocked`. Delivery only flips it, so a delivered card with no other
change stays in the set-based path (a box wakes thousands of cards at once).
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

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

from cards.events import Deleted, Edited
from cards.models import CardBatch, CardEvent, TopUpCard
from cards.models.events import CardEventKind

from .audit import STATE_EVENT_KINDS
from .common import as_date, trunc


class Kind:
    ISSUED = "issued"
    REDEEMED = "redeemed"
    REVERSED = "reversed"
    BREAKAGE = "breakage"
    WRITTEN_OFF = "written_off"
    REINSTATED = "reinstated"
    DELETED = "deleted"
    MOVED = "moved"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    DELIVERED = "delivered"
    ALL = (
        ISSUED,
        REDEEMED,
        REVERSED,
        BREAKAGE,
        WRITTEN_OFF,
        REINSTATED,
        DELETED,
        MOVED,
        BLOCKED,
        UNBLOCKED,
        DELIVERED,
    )


KEYS = ("day", "currency", "reseller_id", "series", "blocked", "dormant", "kind")
"""What a movement row is grouped by; each row also has `cards` and `amount` (signed)."""

_FLAG = Edited.BLOCKED  # block events say it by their kind, not in a field of their own
_DORMANT = "dormant"  # the `delivered` event's kind says it: the card was dormant until then
UNKNOWN_CREATION = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
"""The creation time of a deleted card whose event does not say it (an imported card deleted
before deletion events recorded it): before any date a report asks about."""


@dataclass(frozen=True)
class Window:
    """Movements at instants in [since, until); `since` None: from the beginning."""

    since: dt.datetime | None
    until: dt.datetime

    def holds(self, field: str) -> Q:
        condition = Q(**{f"{field}__lt": self.until})
        if self.since is not None:
            condition &= Q(**{f"{field}__gte": self.since})
        return condition

    def contains(self, instant: dt.datetime) -> bool:
        return (self.since is None or instant >= self.since) and instant < self.until


class _Totals:
    """Movement rows added up by KEYS (a loop over groups and replayed cards, never all cards)."""

    def __init__(self) -> None:
        self.sums: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])

    def add(self, key: tuple, cards: int, amount: Decimal) -> None:
        total = self.sums[key]
        total[0] += cards
        total[1] += amount

    def rows(self) -> list[dict]:
        return [
            {**dict(zip(KEYS, key, strict=True)), "cards": cards, "amount": amount}
            for key, (cards, amount) in self.sums.items()
            if cards or amount
        ]


def _state_events(window: Window) -> QuerySet:
    events = CardEvent.objects.filter(kind__in=STATE_EVENT_KINDS)
    if window.since is not None:
        events = events.filter(created_at__gte=window.since)
    return events


# --- cards with no change since the window's start: set-based ---------------------------------


def _unchanged_cards(window: Window, filters: dict) -> QuerySet:
    changed = _state_events(window).filter(card_id=OuterRef("pk"))
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


def _aggregate(
    totals: _Totals, cards: QuerySet, *, at: str, kind: str, sign: int, blocked, dormant
):
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


def _deliveries(totals: _Totals, window: Window, filters: dict, flag_at_creation) -> None:
    """The unchanged cards delivered in the window while owed: from dormant to not, inside
    liability. Read from the `delivered` events (the (kind, created_at) index), never from every
    card. Owed then: a dormant card cannot have been redeemed, so only its expiry can have
    passed (at the delivery's instant it comes first)."""
    unchanged = ~Exists(_state_events(window).filter(card_id=OuterRef("card_id")))
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


def _unchanged_movements(totals: _Totals, window: Window, filters: dict) -> None:
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


# --- cards changed since the window's start, and deleted cards: replayed ----------------------


def parse_instant(value) -> dt.datetime | None:
    """A datetime as the database wrote it into JSON (cards.events.Deleted): ISO with an offset
    on PostgreSQL, UTC text without one on SQLite."""
    if value is None or isinstance(value, dt.datetime):
        return value
    parsed = dt.datetime.fromisoformat(str(value))
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=dt.UTC)


def _flag(value) -> bool:
    return value in (True, 1, "true", "1")


@dataclass
class _Change:
    at: dt.datetime
    order: int
    field: str
    old: object


@dataclass
class _Card:
    """A card as its row (or deletion event) has it now, and its changes since the window."""

    amount: Decimal
    currency: str
    series: str
    reseller_id: int | None
    expires_at: dt.datetime
    blocked: bool
    created_at: dt.datetime | None
    dormant: bool = False
    activated_at: dt.datetime | None = None
    reversed_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None
    changes: list[_Change] | None = None


def _change(event: dict) -> _Change:
    if event["kind"] == CardEventKind.EDITED:
        field = event["changes"].get(Edited.FIELD)
        old = event["changes"].get(Edited.OLD)
        if field == Edited.EXPIRES_AT:
            old = parse_instant(old)
    elif event["kind"] == CardEventKind.DELIVERED:
        field, old = _DORMANT, True
    else:
        # Mass Edit writes a block event only when the flag flips: the kind says what it was.
        field, old = _FLAG, event["kind"] == CardEventKind.UNBLOCKED
    return _Change(at=event["created_at"], order=event["id"], field=field, old=old)


_SAME = object()


def _replay(card: _Card, window: Window, totals: _Totals) -> None:
    """Walk the card through the window and add its movements to `totals`."""
    changes = sorted(card.changes or [], key=lambda c: (c.at, c.order))
    since = window.since
    reversed_before = (
        card.reversed_at is not None and since is not None and card.reversed_at < since
    )
    if card.reversed_at is not None and not reversed_before:
        # A reversal blocks the card (cards.events.Reversed): the flag was off before it.
        changes.append(_Change(at=card.reversed_at, order=-1, field=_FLAG, old=False))
        changes.sort(key=lambda c: (c.at, c.order))
    now = {
        Edited.EXPIRES_AT: card.expires_at,
        Edited.RESELLER: card.reseller_id,
        _FLAG: card.blocked,
        _DORMANT: card.dormant,
    }
    # The value each change sets: the `old` of the next change of that field, or the value now.
    sets: list[object] = [None] * len(changes)
    following = dict(now)
    for index in range(len(changes) - 1, -1, -1):
        sets[index] = following.get(changes[index].field)
        following[changes[index].field] = changes[index].old
    state = following  # the values before the first change: those at the window's start
    created = card.created_at or UNKNOWN_CREATION
    exists = since is not None and created < since
    if card.deleted_at is not None and since is not None and card.deleted_at < since:
        return
    redeemed_before = (
        card.activated_at is not None and since is not None and card.activated_at < since
    )
    owed_since = since
    live = (
        exists
        and (not redeemed_before or reversed_before)
        and since is not None
        and state[Edited.EXPIRES_AT] >= since
    )

    def move(at, kind, sign, reseller=_SAME, blocked=None, dormant=None):
        key = (
            timezone.localtime(at).date(),
            card.currency,
            state[Edited.RESELLER] if reseller is _SAME else reseller,
            card.series,
            bool(state[_FLAG] if blocked is None else blocked),
            bool(state[_DORMANT] if dormant is None else dormant),
            kind,
        )
        totals.add(key, sign, sign * card.amount)

    points: list[tuple[dt.datetime, int, int, str]] = []
    if not exists and (since is None or created >= since):
        points.append((created, 0, 0, "create"))
    if card.activated_at is not None and not redeemed_before:
        points.append((card.activated_at, 2, 0, "redeem"))
    for index, change in enumerate(changes):
        points.append((change.at, 2, index + 1, "change"))
    if card.reversed_at is not None and not reversed_before:
        # After the redemption, before the reversal's own flag change at the same instant.
        points.append((card.reversed_at, 2, 0, "reverse"))
    if card.deleted_at is not None:
        points.append((card.deleted_at, 3, 0, "delete"))
    points.sort(key=lambda p: (p[0], p[1], p[2], p[3] == "change"))
    redeemed = redeemed_before and not reversed_before
    redemption_moved = redeemed_before  # a redemption before the window left liability then

    for at, _rank, index, action in points:
        if at >= window.until:
            break
        if live and state[Edited.EXPIRES_AT] <= at:
            move(max(state[Edited.EXPIRES_AT], owed_since), Kind.BREAKAGE, -1)
            live = False
        if action == "create":
            exists = True
            move(at, Kind.ISSUED, 1)
            live, owed_since = True, at
        elif action == "redeem":
            if live:
                move(at, Kind.REDEEMED, -1)
                live = False
                redemption_moved = True
            redeemed = True
        elif action == "reverse":
            redeemed = False
            state[_FLAG] = True  # the reversal blocks the card
            if redemption_moved:
                move(at, Kind.REVERSED, 1)
                live, owed_since = True, at
        elif action == "change":
            change = changes[index - 1]
            new = sets[index - 1]
            if change.field == Edited.EXPIRES_AT:
                if live and new <= at:
                    move(at, Kind.WRITTEN_OFF, -1)
                    live = False
                elif not live and exists and not redeemed and new > at >= state[change.field]:
                    state[change.field] = new
                    move(at, Kind.REINSTATED, 1)
                    live, owed_since = True, at
            elif change.field == Edited.RESELLER:
                if live and new != state[change.field]:
                    move(at, Kind.MOVED, -1)
                    move(at, Kind.MOVED, 1, reseller=new)
            elif change.field == _FLAG and change.order != -1:
                if live and bool(new) != bool(state[_FLAG]):
                    kind = Kind.BLOCKED if new else Kind.UNBLOCKED
                    move(at, kind, -1)
                    move(at, kind, 1, blocked=new)
            elif change.field == _DORMANT:
                if live and state[_DORMANT] and not new:
                    move(at, Kind.DELIVERED, -1)
                    move(at, Kind.DELIVERED, 1, dormant=False)
            state[change.field] = new
        elif action == "delete":
            if live:
                move(at, Kind.DELETED, -1)
                live = False
            exists = False
        if live and state[Edited.EXPIRES_AT] <= at:
            move(at, Kind.BREAKAGE, -1)
            live = False
    if live and state[Edited.EXPIRES_AT] < window.until:
        move(max(state[Edited.EXPIRES_AT], owed_since), Kind.BREAKAGE, -1)


def _serial_series(serial: str) -> str:
    return serial.split("-", 1)[0]


def _deleted_card(event: dict, batch_created: dict, batch_series: dict) -> _Card:
    changes = event["changes"]
    created = parse_instant(changes.get(Deleted.CREATED_AT))
    if created is None:
        created = batch_created.get(event["batch_id"])
    return _Card(
        amount=Decimal(str(changes[Deleted.AMOUNT])),
        currency=changes[Deleted.CURRENCY],
        series=str(
            changes.get(Deleted.SERIES)
            or batch_series.get(event["batch_id"])
            or _serial_series(event["serial"])
        ),
        reseller_id=changes.get(Deleted.RESELLER),
        expires_at=parse_instant(changes[Deleted.EXPIRES_AT]),
        blocked=_flag(changes.get(Deleted.BLOCKED)),
        dormant=_flag(changes.get(Deleted.DORMANT)),
        created_at=created,
        deleted_at=event["created_at"],
        changes=[],
    )


_CARD_FIELDS = (
    "pk",
    "amount",
    "currency",
    "series",
    "reseller_id",
    "expires_at",
    "blocked",
    "dormant",
    "created_at",
    "activated_at",
    "reversed_at",
)


def _replayed_cards(window: Window, filters: dict) -> Iterable[_Card]:
    # With the changes, the deliveries of the cards replayed: of those changed, and of those
    # deleted (unlinked). Another card's delivery is read set-based (_deliveries).
    replayed = Q(card_id__isnull=True) | Exists(
        _state_events(window).filter(card_id=OuterRef("card_id"))
    )
    events = CardEvent.objects.filter(
        Q(kind__in=STATE_EVENT_KINDS) | Q(replayed, kind=CardEventKind.DELIVERED)
    )
    if window.since is not None:
        events = events.filter(created_at__gte=window.since)
    events = list(events.values("id", "kind", "card_id", "serial", "changes", "created_at"))
    by_card: dict[int, list[_Change]] = defaultdict(list)
    unlinked: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        if event["card_id"] is not None:
            by_card[event["card_id"]].append(_change(event))
        else:
            unlinked[event["serial"]].append(event)
    if by_card:
        changed = TopUpCard.objects.filter(
            Exists(_state_events(window).filter(card_id=OuterRef("pk"))), **filters
        ).order_by()
        for row in changed.values(*_CARD_FIELDS).iterator(chunk_size=2000):
            card_id = row.pop("pk")
            yield _Card(**row, changes=by_card.get(card_id, []))

    # Also those deleted after the window: they existed in it.
    deletions = CardEvent.objects.filter(kind=CardEventKind.DELETED)
    if window.since is not None:
        deletions = deletions.filter(created_at__gte=window.since)
    deleted = list(
        deletions.order_by("created_at", "id").values(
            "id", "serial", "batch_id", "changes", "created_at"
        )
    )
    batches = {event["batch_id"] for event in deleted if event["batch_id"] is not None}
    batch_created, batch_series = {}, {}
    if batches:
        for pk, created, series in CardBatch.objects.filter(pk__in=batches).values_list(
            "pk", "created_at", "series"
        ):
            batch_created[pk], batch_series[pk] = created, series
    for event in deleted:
        card = _deleted_card(event, batch_created, batch_series)
        if any(
            value not in (None, "") and getattr(card, name) != value
            for name, value in (
                ("currency", filters.get("currency")),
                ("series", filters.get("series")),
            )
        ):
            continue
        # The card's earlier changes lost their link when it went; they keep its serial. A
        # serial freed by a deletion may be given again: a change belongs to the first deletion
        # of its serial at or after it.
        mine = [e for e in unlinked.get(event["serial"], ()) if e["created_at"] <= card.deleted_at]
        for e in mine:
            unlinked[event["serial"]].remove(e)
        card.changes = [_change(e) for e in mine]
        yield card


def movements(
    *,
    since: dt.datetime | None,
    until: dt.datetime,
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
) -> list[dict]:
    """Every movement at an instant in [since, until), grouped by KEYS (the day in TIME_ZONE).

    The reseller filter (a scoped user's too) applies to the reseller a movement was made
    under: a card moved from one reseller to another leaves one and enters the other."""
    window = Window(since=since, until=until)
    filters = {k: v for k, v in (("currency", currency), ("series", series)) if v}
    totals = _Totals()
    unchanged_filters = dict(filters)
    if reseller_id is not None:
        unchanged_filters["reseller_id"] = reseller_id
    _unchanged_movements(totals, window, unchanged_filters)
    for card in _replayed_cards(window, filters):
        _replay(card, window, totals)
    rows = totals.rows()
    if reseller_id is not None:
        rows = [row for row in rows if row["reseller_id"] == reseller_id]
    return rows
