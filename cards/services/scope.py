"""Rules across resellers: the reseller a staff user limited to one reseller may give cards to,
who may learn whether a PIN exists (docs/reliability.md, "No PIN oracle"), and the reseller a
series belongs to (docs/cards.md, "Serial number")."""

from dataclasses import dataclass

from cards.exceptions import CardPermissionDenied
from cards.models import CardBatch, CardSeries, TopUpCard
from subscribers.models import Reseller
from subscribers.selectors import staff_reseller


def check_reseller_scope(*, actor, reseller) -> None:
    scoped = staff_reseller(actor)
    if scoped is not None and (reseller is None or reseller.pk != scoped.pk):
        raise CardPermissionDenied(f"You may only assign cards to {scoped.name}.", field="reseller")


# --- who may learn whether a PIN exists ----------------------------------------------------------


def pin_search_refusal(actor) -> str | None:
    """Why `actor` may not search cards by PIN, or None. The search looks only at the cards the
    actor sees, so seeing their PINs (`cards.view_pin`) is enough. `actor` None is the system."""
    if actor is None or actor.has_perm("cards.view_pin"):
        return None
    return "Searching by PIN Code needs the permission to see card PINs."


def pin_import_refusal(actor) -> str | None:
    """Why `actor` may not import cards with PINs, or None.

    An imported PIN must be unique among the cards of every reseller, so the check (and the
    unique index at commit) tells whether any card has it: only who may see every PIN may ask.
    """
    if actor is None:
        return None
    if not actor.has_perm("cards.view_pin"):
        return (
            "Importing cards needs the permission to see card PINs: each imported PIN is "
            "checked against every card."
        )
    if staff_reseller(actor) is not None:
        return (
            "Importing cards is for operators not limited to one reseller: each imported PIN is "
            "checked against the cards of every reseller. Ask your platform operator to import "
            "the file."
        )
    return None


# --- the reseller a series belongs to -----------------------------------------------------------


@dataclass(frozen=True)
class SeriesOwner:
    reseller_id: int | None
    """None: the series holds cards without a reseller."""


def series_owner(series: str) -> SeriesOwner | None:
    """Whose cards the series holds; None when no card or batch ever used it.

    The `CardSeries` row says it; cards written without one are read the way migration 0006
    filled the rows: the lowest-numbered card (numbers only grow), else the first batch.
    """
    row = CardSeries.objects.filter(series=series).values("reseller_id").first()
    if row is None:
        row = (
            TopUpCard.objects.filter(series=series).order_by("number").values("reseller_id").first()
            or CardBatch.objects.filter(series=series)
            .order_by("created_at", "id")
            .values("reseller_id")
            .first()
        )
    return SeriesOwner(row["reseller_id"]) if row is not None else None


def _series_refusal(*, actor, series: str, reseller, owner: SeriesOwner | None) -> str | None:
    return series_refusal(
        actor=actor, series=series, reseller_id=reseller.pk if reseller else None, owner=owner
    )


def series_refusal(
    *, actor, series: str, reseller_id: int | None, owner: SeriesOwner | None
) -> str | None:
    """Why cards of the reseller `reseller_id` (None: no reseller) may not go into `series` owned
    by `owner` (None: nobody used it), or None. Read only: the import checks a whole file's
    series with it before `series_claim` locks them."""
    if owner is None or owner.reseller_id == reseller_id:
        return None
    if staff_reseller(actor) is not None:
        # Another reseller's name is not theirs to learn.
        return f"Series {series} is used by another company: choose another series."
    if owner.reseller_id is None:
        return (
            f"Series {series} holds cards without a reseller: choose another series, or "
            "leave the reseller empty."
        )
    name = Reseller.objects.filter(pk=owner.reseller_id).values_list("name", flat=True).first()
    return f"Series {series} belongs to {name}: choose another series, or {name} as the reseller."


def check_series_owner(*, actor, series: str, reseller) -> None:
    """Refuse cards of `reseller` in a series that belongs to another (or to no reseller).

    Read only: for a form's early answer. Writers call `series_claim` under the series lock.
    """
    refusal = _series_refusal(
        actor=actor, series=series, reseller=reseller, owner=series_owner(series)
    )
    if refusal:
        raise CardPermissionDenied(refusal, field="series")


def series_claim(*, actor, series: str, reseller) -> None:
    """Lock the series until the transaction ends, claiming it for `reseller` if nobody used it;
    refuse (CardPermissionDenied, field "series") when it belongs to another.

    Two transactions claiming a new series for different resellers: the first insert wins, the
    other waits on the row lock, then reads the winner and is refused.
    """
    owner = series_owner(series)
    claimed = owner.reseller_id if owner is not None else (reseller.pk if reseller else None)
    CardSeries.objects.bulk_create(
        [CardSeries(series=series, reseller_id=claimed)], ignore_conflicts=True
    )
    row = CardSeries.objects.select_for_update().only("reseller_id").get(series=series)
    refusal = _series_refusal(
        actor=actor, series=series, reseller=reseller, owner=SeriesOwner(row.reseller_id)
    )
    if refusal:
        raise CardPermissionDenied(refusal, field="series")
