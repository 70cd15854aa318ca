"""Mass Edit and Delete all of a selection (the cards an Advanced Search selects), in the request
in one transaction, or by the worker as a background job (cards.jobs.mass) in chunks.

    cards_selection_edit(*, cards, changes, delete_ids=(), expected=None, actor)
    cards_selection_delete(*, cards, expected=None, actor) -> int

In the request each is one transaction, all or nothing. `expected` is the number of cards the
operator confirmed: another number refuses the whole work (SelectionChanged), nothing changes.

A job (docs/cards.md, Background jobs) first writes the ids of its selection once
(`job_selection_snapshot`, the same count check), then works through them a chunk at a time
(`job_chunk_edit`, `job_chunk_delete`): each chunk locks only its own cards, changes and audits
them with the services above, removes its ids from the snapshot and adds its counts to the job,
all in one short transaction. So a sale waits for at most one chunk, and an interrupted job has
done exactly its committed chunks, which a resumed run does not see again.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from cards.exceptions import CardEditError
from cards.models import CardJob, CardJobCard, TopUpCard
from cards.models.jobs import SELECTION_AT, CardJobKind
from cards.selectors import cards_visible_to
from cards.services.mass_edit import (
    PRESERVE,
    cards_mass_delete,
    cards_mass_update,
    editable_cards,
)
from cards.sql import selection as sql
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
    expire_now_at: dt.datetime | None = None,
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
            expire_now_at=expire_now_at,
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


# --- background jobs: the snapshot, then chunks -------------------------------------------------


@transaction.atomic
def job_selection_snapshot(*, job: CardJob, cards: QuerySet, expected: int) -> int:
    """Write the ids of the cards of `cards` that may change as `job`'s work, once; another
    number than `expected` (the operator's confirmation) refuses it and writes nothing. Starts
    the job's counts at zero (the fields `changes` names, deletions when there are any)."""
    selected = sql.snapshot_selection(editable_cards(cards), job_id=job.pk)
    if selected != expected:
        raise SelectionChanged(expected=expected, now=selected)
    params = job.params
    result = {SELECTION_AT: timezone.now().isoformat(), "redeemed": 0, "skipped": 0}
    if job.kind == CardJobKind.MASS_EDIT:
        result["changed"] = {field: 0 for field in params["changes"]}
        if params.get("delete_ids"):
            result["deleted"] = 0
    else:
        result["deleted"] = 0
    CardJob.objects.filter(pk=job.pk).update(result=result, done=0, total=selected)
    return selected


@dataclass(frozen=True)
class JobChunk:
    last_id: int
    """The highest card id of the chunk: the next chunk starts after it."""
    taken: int
    """Cards of the snapshot the chunk settled (done: changed, deleted or left as they were)."""


def _next_chunk(job_id: int, *, after: int, size: int):
    """Lock the job (one chunk at a time, whoever runs it) and find the ids of its next chunk."""
    job = CardJob.objects.select_for_update().get(pk=job_id)
    ids = list(
        CardJobCard.objects.filter(job_id=job_id, card_id__gt=after)
        .order_by("card_id")
        .values_list("card_id", flat=True)[:size]
    )
    if not ids:
        return job, None, None
    in_chunk = CardJobCard.objects.filter(job_id=job_id, card_id__gt=after, card_id__lte=ids[-1])
    # The actor's scope again: a card moved to another reseller meanwhile is out of reach.
    cards = cards_visible_to(job.requested_by).filter(
        pk__gt=after, pk__lte=ids[-1], pk__in=in_chunk.values("card_id")
    )
    return job, ids, (in_chunk, cards)


def _settle_chunk(job: CardJob, ids, in_chunk, *, selected: int, changed=None, deleted=None):
    """Remove the chunk from the snapshot and add its counts to the job, in its transaction."""
    redeemed = TopUpCard.objects.filter(
        pk__in=in_chunk.values("card_id"), activated_at__isnull=False
    ).count()
    result = dict(job.result)
    result["redeemed"] = result.get("redeemed", 0) + redeemed
    result["skipped"] = result.get("skipped", 0) + len(ids) - selected
    if changed is not None:
        totals = dict(result.get("changed", {}))
        for field, count in changed.items():
            totals[field] = totals.get(field, 0) + count
        result["changed"] = totals
    if deleted is not None:
        result["deleted"] = result.get("deleted", 0) + deleted
    in_chunk._raw_delete(in_chunk.db)
    CardJob.objects.filter(pk=job.pk).update(
        done=F("done") + len(ids), result=result, heartbeat_at=timezone.now()
    )
    return JobChunk(last_id=ids[-1], taken=len(ids))


@transaction.atomic
def job_chunk_edit(
    *, job_id: int, after: int, size: int, changes: dict, delete_ids=(), actor
) -> JobChunk | None:
    """Mass Edit the next `size` cards of the job's snapshot after card id `after` (and delete
    those of them marked in `delete_ids`); None when none is left. A card activated since the
    snapshot (or moved out of the actor's reach, or deleted) is left as it is and counted."""
    job, ids, chunk = _next_chunk(job_id, after=after, size=size)
    if ids is None:
        return None
    in_chunk, cards = chunk
    marked = [pk for pk in delete_ids if after < pk <= ids[-1]]
    # "Expire now" is the moment the selection was written, for every chunk and resumed run.
    moment = job.result.get(SELECTION_AT)
    edited = cards_selection_edit(
        cards=cards,
        changes=changes,
        delete_ids=marked,
        expire_now_at=dt.datetime.fromisoformat(moment) if moment else None,
        actor=actor,
    )
    return _settle_chunk(
        job,
        ids,
        in_chunk,
        selected=edited.selected,
        changed=edited.changed,
        deleted=edited.deleted if "deleted" in job.result else None,
    )


@transaction.atomic
def job_chunk_delete(*, job_id: int, after: int, size: int, actor) -> JobChunk | None:
    """Delete all: the next `size` cards of the job's snapshot after card id `after`, as
    `job_chunk_edit` does for a Mass Edit."""
    job, ids, chunk = _next_chunk(job_id, after=after, size=size)
    if ids is None:
        return None
    in_chunk, cards = chunk
    deleted = cards_selection_delete(cards=cards, actor=actor)
    return _settle_chunk(job, ids, in_chunk, selected=deleted, deleted=deleted)
