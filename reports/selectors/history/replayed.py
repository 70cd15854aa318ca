"""The cards to replay one by one, read from their rows and events: those changed since the
window's start, and the deleted ones, rebuilt from their `deleted` event and the unlinked
events of their serial (docs/reports.md, "Deleted cards")."""

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from django.db.models import Exists, OuterRef, Q

from cards.events import Deleted
from cards.models import CardBatch, CardEvent, TopUpCard
from cards.models.events import CardEventKind

from ..audit import STATE_EVENT_KINDS
from .replay import Card, Change, change_of, flag_value, parse_instant
from .window import Window, state_events


def _serial_series(serial: str) -> str:
    return serial.split("-", 1)[0]


def _deleted_card(event: dict, batch_created: dict, batch_series: dict) -> Card:
    changes = event["changes"]
    created = parse_instant(changes.get(Deleted.CREATED_AT))
    if created is None:
        created = batch_created.get(event["batch_id"])
    return Card(
        amount=Decimal(str(changes[Deleted.AMOUNT])),
        currency=changes[Deleted.CURRENCY],
        series=str(
            changes.get(Deleted.SERIES)
            or batch_series.get(event["batch_id"])
            or _serial_series(event["serial"])
        ),
        reseller_id=changes.get(Deleted.RESELLER),
        expires_at=parse_instant(changes[Deleted.EXPIRES_AT]),
        blocked=flag_value(changes.get(Deleted.BLOCKED)),
        dormant=flag_value(changes.get(Deleted.DORMANT)),
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


def replayed_cards(window: Window, filters: dict) -> Iterable[Card]:
    # With the changes, the deliveries of the cards replayed: of those changed, and of those
    # deleted (unlinked). Another card's delivery is read set-based (_deliveries).
    replayed = Q(card_id__isnull=True) | Exists(
        state_events(window).filter(card_id=OuterRef("card_id"))
    )
    events = CardEvent.objects.filter(
        Q(kind__in=STATE_EVENT_KINDS) | Q(replayed, kind=CardEventKind.DELIVERED)
    )
    if window.since is not None:
        events = events.filter(created_at__gte=window.since)
    events = list(events.values("id", "kind", "card_id", "serial", "changes", "created_at"))
    by_card: dict[int, list[Change]] = defaultdict(list)
    unlinked: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        if event["card_id"] is not None:
            by_card[event["card_id"]].append(change_of(event))
        else:
            unlinked[event["serial"]].append(event)
    if by_card:
        changed = TopUpCard.objects.filter(
            Exists(state_events(window).filter(card_id=OuterRef("pk"))), **filters
        ).order_by()
        for row in changed.values(*_CARD_FIELDS).iterator(chunk_size=2000):
            card_id = row.pop("pk")
            yield Card(**row, changes=by_card.get(card_id, []))

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
        card.changes = [change_of(e) for e in mine]
        yield card
