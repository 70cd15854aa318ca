"""Mass Edit and Delete all: every card the current search selects, in set-based statements."""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    CharField,
    DateTimeField,
    F,
    QuerySet,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Concat, JSONObject, LPad
from django.utils import timezone

from cards.exceptions import (
    CardEditError,
)
from cards.models import (
    SERIAL_NUMBER_DIGITS,
    CardEvent,
    CardEventKind,
    TopUpCard,
)
from cards.services.scope import check_reseller_scope
from subscribers.models import Reseller
from wallets.models import Channel

PRESERVE: Any = object()
"""Mass Edit's "preserve": leave the field as each card has it."""


@dataclass(frozen=True)
class MassUpdateResult:
    selected: int
    """Cards the search selected that may change (not activated), locked for the update."""
    changed: dict[str, int]
    """Per field (expires_at, reseller, blocked): how many cards it actually changed."""


def _editable(cards: QuerySet) -> QuerySet:
    """The selected cards that may change: never an activated one (they are history)."""
    return cards.filter(activated_at__isnull=True).select_related(None).order_by()


_LOCKED_CARDS = "topup_locked_cards"
_LOCKED_IDS = "SELECT id FROM topup_locked_cards"


def _lock_cards(cards: QuerySet) -> tuple[QuerySet, int]:
    """Lock the selected rows in primary-key order (deadlock-free) without loading them.

    Returns the locked cards and their number. Every later statement of the edit must work on
    exactly these rows: re-running the search would also match cards another transaction
    commits meanwhile (a generated batch), and those would be changed or deleted without their
    audit event, or get only some of the fields (found by tests/reliability). So their ids are
    kept in a temporary table that lives until the transaction ends.
    """
    if connection.vendor != "postgresql":
        # SQLite: the first write takes the database's write lock until the commit, so no other
        # transaction can add a card between this edit's statements.
        return cards, cards.count()
    try:
        sql, params = cards.order_by("pk").values("pk").query.sql_with_params()
    except EmptyResultSet:  # a selection empty by construction (`pk__in=[]`, `.none()`)
        return cards.none(), 0
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_LOCKED_CARDS}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_LOCKED_CARDS} ON COMMIT DROP AS "  # noqa: S608
            f"SELECT pk AS id FROM ({sql} FOR UPDATE) AS locked",
            params,
        )
        count = cursor.rowcount
        # Row counts for the planner: a hash join for a large selection, not a loop per id.
        cursor.execute(f"ANALYZE {_LOCKED_CARDS}")
    locked = TopUpCard.objects.filter(pk__in=RawSQL(_LOCKED_IDS, ()))  # noqa: S611
    return locked.order_by(), count


def _serial_expression():
    return Concat(
        F("series"),
        Value("-"),
        LPad(Cast("number", CharField()), SERIAL_NUMBER_DIGITS, Value("0")),
        output_field=CharField(),
    )


def _insert_events(cards: QuerySet, *, kind: str, actor, card: bool, changes) -> int:
    """INSERT … SELECT one CardEvent per selected card: set-based, no rows through Python."""
    rows = cards.annotate(
        ev_kind=Value(kind, output_field=CharField()),
        ev_card=F("pk") if card else Value(None, output_field=BigIntegerField()),
        ev_serial=_serial_expression(),
        ev_batch=F("batch_id"),
        ev_actor=Value(getattr(actor, "pk", None), output_field=BigIntegerField()),
        ev_channel=Value(Channel.ADMIN, output_field=CharField()),
        ev_changes=changes,
        ev_created=Value(timezone.now(), output_field=DateTimeField()),
    ).values_list(
        "ev_kind",
        "ev_card",
        "ev_serial",
        "ev_batch",
        "ev_actor",
        "ev_channel",
        "ev_changes",
        "ev_created",
    )
    sql, params = rows.query.sql_with_params()
    table = CardEvent._meta.db_table
    columns = "kind, card_id, serial, batch_id, actor_id, channel, changes, created_at"
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({columns}) {sql}", params)  # noqa: S608
        return cursor.rowcount


def _json_value(value) -> Value:
    return Value(value, output_field=CharField()) if value is not None else Value(None)


@transaction.atomic
def cards_mass_update(
    *,
    cards: QuerySet,
    expires_at: dt.datetime | Any = PRESERVE,
    reseller: Reseller | None | Any = PRESERVE,
    blocked: bool | Any = PRESERVE,
    actor,
) -> MassUpdateResult:
    """Apply Mass Edit to every card `cards` selects (not only a page), in set-based queries.

    Activated cards are never changed. Each changed field of each card is audited as a
    CardEvent (edited with old and new value; blocked / unblocked), in the same transaction.
    """
    if expires_at is not PRESERVE and (
        not isinstance(expires_at, dt.datetime) or timezone.is_naive(expires_at)
    ):
        raise CardEditError("Expiration Date must be a date and time.", field="expires_at")
    if reseller is not PRESERVE:
        if reseller is not None and not isinstance(reseller, Reseller):
            raise CardEditError("Company must be a reseller.", field="reseller")
        check_reseller_scope(actor=actor, reseller=reseller)
    if blocked is not PRESERVE and not isinstance(blocked, bool):
        raise CardEditError("Block must be block, unblock or preserve.", field="blocked")
    target, selected = _lock_cards(_editable(cards))
    changed: dict[str, int] = {}
    if not selected:
        # Nothing to change, and no statement to run: an empty selection compiles to no SQL.
        asked = {"expires_at": expires_at, "reseller": reseller, "blocked": blocked}
        changed = {field: 0 for field, value in asked.items() if value is not PRESERVE}
        return MassUpdateResult(selected=0, changed=changed)
    if expires_at is not PRESERVE:
        touched = target.exclude(expires_at=expires_at)
        _insert_events(
            touched,
            kind=CardEventKind.EDITED,
            actor=actor,
            card=True,
            changes=JSONObject(
                field=Value("expires_at"),
                old=F("expires_at"),
                new=_json_value(expires_at.isoformat()),
            ),
        )
        changed["expires_at"] = touched.update(expires_at=expires_at)
    if reseller is not PRESERVE:
        touched = target.exclude(reseller=reseller) if reseller else target.exclude(reseller=None)
        _insert_events(
            touched,
            kind=CardEventKind.EDITED,
            actor=actor,
            card=True,
            changes=JSONObject(
                field=Value("reseller"),
                old=F("reseller_id"),
                new=Value(reseller.pk if reseller else None, output_field=BigIntegerField()),
                new_name=_json_value(reseller.name if reseller else None),
            ),
        )
        changed["reseller"] = touched.update(reseller=reseller)
    if blocked is not PRESERVE:
        touched = target.filter(blocked=not blocked)
        _insert_events(
            touched,
            kind=CardEventKind.BLOCKED if blocked else CardEventKind.UNBLOCKED,
            actor=actor,
            card=True,
            changes=JSONObject(field=Value("blocked"), old=Value(not blocked), new=Value(blocked)),
        )
        changed["blocked"] = touched.update(blocked=blocked)
    return MassUpdateResult(selected=selected, changed=changed)


@transaction.atomic
def cards_mass_delete(*, cards: QuerySet, actor) -> int:
    """Delete every card `cards` selects except activated ones; returns how many went.

    Each deletion is audited with the serial and what the reports need to count the card on the
    days before its deletion (reports.selectors: amount, currency, reseller, series, created_at,
    expires_at and blocked as they were when it went), so the history outlives the card; the
    card's earlier events keep their serial and lose only the link. The datetimes land in the
    JSON as the database writes them: ISO 8601 with a "T" and an offset on PostgreSQL (jsonb),
    the column's own "YYYY-MM-DD HH:MM:SS[.ffffff]" UTC text on SQLite; the reports read both.
    """
    target, selected = _lock_cards(_editable(cards))
    if not selected:
        return 0
    _insert_events(
        target,
        kind=CardEventKind.DELETED,
        actor=actor,
        card=False,
        changes=JSONObject(
            amount=Cast("amount", CharField()),
            currency=F("currency"),
            reseller=F("reseller_id"),
            series=F("series"),
            created_at=F("created_at"),
            expires_at=F("expires_at"),
            blocked=F("blocked"),
        ),
    )
    CardEvent.objects.filter(card__in=target.values("pk")).update(card=None)
    # One DELETE … WHERE: no per-row collection (nothing but the events points at a card that
    # was never activated, and those were just unlinked).
    return target._raw_delete(target.db)
