"""The cards to replay one by one, read from their rows and events: those changed since the
window's start, and the deleted ones, rebuilt from their `deleted` event and the unlinked
events of their serial (docs/reports.md, "Deleted cards")."""

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from django.db.models import Exists, OuterRef, Q, QuerySet

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


# How many events (of changed cards) or deletions one read brings into memory: the summary's
# first build replays a whole history (30M events at 10M cards), which read at once took more
# memory than the machine had (23 GB when the kernel stopped it).
CHUNK = 20_000


def replayed_cards(window: Window, filters: dict) -> Iterable[Card]:
    yield from _changed_cards(window, filters)
    yield from _deleted_cards(window, filters)


def _window_events(window: Window) -> QuerySet:
    # With the changes, the deliveries of the cards replayed: of those changed, and of those
    # deleted (unlinked). Another card's delivery is read set-based (unchanged._deliveries).
    replayed = Q(card_id__isnull=True) | Exists(
        state_events(window).filter(card_id=OuterRef("card_id"))
    )
    events = CardEvent.objects.filter(
        Q(kind__in=STATE_EVENT_KINDS) | Q(replayed, kind=CardEventKind.DELIVERED)
    )
    if window.since is not None:
        events = events.filter(created_at__gte=window.since)
    return events


def _pages(rows: QuerySet, key: str, fields: tuple[str, ...]) -> Iterable[list[dict]]:
    """`rows` (ordered by `key` first) CHUNK at a time, keyset-paginated on `key`: the rows
    of one `key` value always in the same page."""
    after = None
    while True:
        page = rows if after is None else rows.filter(**{f"{key}__gt": after})
        found = list(page.values(*fields)[:CHUNK])
        if not found:
            return
        if len(found) < CHUNK:  # the last page
            yield found
            return
        last = found[-1][key]
        if found[0][key] == last:  # one key with more rows than a page: all of them
            found = list(page.filter(**{key: last}).values(*fields))
        else:  # the last key may go on in the next page: all of it goes there
            found = [row for row in found if row[key] != last]
            last = found[-1][key]
        yield found
        after = last


_EVENT_FIELDS = ("id", "kind", "card_id", "serial", "changes", "created_at")


def _changed_cards(window: Window, filters: dict) -> Iterable[Card]:
    events = _window_events(window).filter(card_id__isnull=False).order_by("card_id", "id")
    for page in _pages(events, "card_id", _EVENT_FIELDS):
        by_card: dict[int, list[Change]] = defaultdict(list)
        for event in page:
            by_card[event["card_id"]].append(change_of(event))
        if not by_card:
            return
        cards = TopUpCard.objects.filter(pk__in=list(by_card), **filters).order_by()
        for row in cards.values(*_CARD_FIELDS):
            card_id = row.pop("pk")
            yield Card(**row, changes=by_card[card_id])


def _deleted_cards(window: Window, filters: dict) -> Iterable[Card]:
    """The cards deleted since the window's start (they existed in it): the deletions of a
    page of serials, then those serials' unlinked events."""
    deletions = CardEvent.objects.filter(kind=CardEventKind.DELETED)
    if window.since is not None:
        deletions = deletions.filter(created_at__gte=window.since)
    deletions = deletions.order_by("serial", "created_at", "id")
    fields = ("id", "serial", "batch_id", "changes", "created_at")
    for page in _pages(deletions, "serial", fields):
        yield from _deleted_chunk(window, filters, page)


def _deleted_chunk(window: Window, filters: dict, deleted: list[dict]) -> Iterable[Card]:
    unlinked: dict[str, list[dict]] = defaultdict(list)
    serials = {event["serial"] for event in deleted}
    for event in (
        _window_events(window)
        .filter(card_id__isnull=True, serial__in=serials)
        .order_by("created_at", "id")
        .values(*_EVENT_FIELDS)
    ):
        unlinked[event["serial"]].append(event)
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
        # of its serial at or after it (deletions of a serial come in time order).
        mine = [e for e in unlinked.get(event["serial"], ()) if e["created_at"] <= card.deleted_at]
        for e in mine:
            unlinked[event["serial"]].remove(e)
        card.changes = [change_of(e) for e in mine]
        yield card
