"""Mass Edit and Delete all of a selection (the cards an Advanced Search selects), the same whether
the admin runs them in the request or the worker runs them as a background job (cards.jobs).

    cards_selection_edit(*, cards, changes, delete_ids=(), expected=None, actor)
    cards_selection_delete(*, cards, expected=None, actor) -> int

`expected` is the number of cards the operator confirmed; a job passes it because the selection
is searched again when the worker runs, possibly much later: another number refuses the whole
work (SelectionChanged) and nothing changes.
"""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet

from cards.exceptions import CardEditError
from cards.services.mass_edit import PRESERVE, cards_mass_delete, cards_mass_update
from common.formats import count_text

MASS_EDIT_FIELDS = ("expires_at", "reseller", "blocked")
"""What Mass Edit may set, in the order the form and the messages show them."""


class SelectionChanged(CardEditError):
    """The search selects another number of cards than the operator confirmed."""

    def __init__(self, *, expected: int, now: int):
        super().__init__(
            f"The selection changed since it was confirmed: it now holds "
            f"{count_text(now, 'card')} that can change, not {expected:,}. Run the search and "
            "confirm again."
        )


@dataclass(frozen=True)
class SelectionEditResult:
    selected: int
    """Cards of the selection that may change (not activated); 0 when no field is set."""
    changed: dict[str, int]
    """Per field set (MASS_EDIT_FIELDS): how many cards it actually changed."""
    deleted: int
    """Marked cards deleted."""


@transaction.atomic
def cards_selection_edit(
    *,
    cards: QuerySet,
    changes: dict,
    delete_ids=(),
    expected: int | None = None,
    actor,
) -> SelectionEditResult:
    """Mass Edit: set the fields `changes` names (expires_at, reseller, blocked; a field left out
    is preserved) on every card `cards` selects, then delete the cards of `delete_ids` among
    them; all of it or nothing, each change audited (cards_mass_update, cards_mass_delete)."""
    unknown = set(changes) - set(MASS_EDIT_FIELDS)
    if unknown:
        raise CardEditError(f"Mass Edit cannot set {', '.join(sorted(unknown))}.")
    selected, changed = 0, {}
    if changes:
        update = cards_mass_update(
            cards=cards,
            expires_at=changes.get("expires_at", PRESERVE),
            reseller=changes.get("reseller", PRESERVE),
            blocked=changes.get("blocked", PRESERVE),
            actor=actor,
        )
        selected, changed = update.selected, update.changed
    if expected is not None and selected != expected:
        raise SelectionChanged(expected=expected, now=selected)
    deleted = 0
    if delete_ids:
        deleted = cards_mass_delete(cards=cards.filter(pk__in=delete_ids), actor=actor)
    return SelectionEditResult(selected=selected, changed=changed, deleted=deleted)


@transaction.atomic
def cards_selection_delete(*, cards: QuerySet, expected: int | None = None, actor) -> int:
    """Delete all: every card `cards` selects except activated ones, audited; how many went."""
    deleted = cards_mass_delete(cards=cards, actor=actor)
    if expected is not None and deleted != expected:
        raise SelectionChanged(expected=expected, now=deleted)
    return deleted
