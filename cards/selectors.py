"""Reads of cards. The admin, Mass Edit, Delete all and the export all select cards here.

The public API for "the current search":

    card_list(*, filters, user, session=None) -> QuerySet[TopUpCard]

`filters` are the Advanced Search parameters exactly as in the changelist URL (a QueryDict or a
dict; names in `cards.filters.SEARCH_FIELDS`); `user` scopes the cards (a staff user linked to a
reseller sees only that reseller's cards; None means the system, e.g. a management command);
`session` resolves `pin_ref`, the PIN search kept out of URLs. Invalid filters raise
`InvalidCardSearch`: a search that cannot be understood selects no card, for every caller (never
a silently broader selection; a PIN that could not be searched for stays in the search as
invalid, see `cards.filters.remember_refusal`). The queryset is newest first.
"""

import json
from dataclasses import dataclass
from decimal import Decimal

from django.db import connections
from django.db.models import BigIntegerField, Count, Max, Q, QuerySet, Sum
from django.db.models.functions import Cast

from subscribers.selectors import staff_reseller

from .filters import CardFilter
from .models import CardBatch, CardEvent, CardJob, CardSeries, TopUpCard
from .models.cards import CardStatus, status_conditions
from .models.events import CardEventKind
from .models.formats import SERIES_MAX_DIGITS
from .models.jobs import CardJobKind
from .services.scope import pin_import_refusal

# Counting stops here: past it the changelist shows the planner's estimate ("about N").
COUNT_CAP = 10_000


class InvalidCardSearch(ValueError):
    """The Advanced Search parameters do not validate; `errors` maps field → messages.

    The text names each field by its label (`labels`: field → label), as the form shows it."""

    def __init__(self, errors, labels=None):
        self.errors = errors
        labels = labels or {}
        super().__init__(
            "; ".join(f"{labels.get(k) or k}: {' '.join(v)}" for k, v in errors.items())
        )


def cards_visible_to(user) -> QuerySet:
    scoped = staff_reseller(user)
    cards = TopUpCard.objects.all()
    return cards.filter(reseller=scoped) if scoped is not None else cards


def card_search(*, filters, user, session=None, queryset: QuerySet | None = None) -> CardFilter:
    """The bound Advanced Search over the cards `user` may see (for forms and errors)."""

    class _Request:  # CardFilter reads the user (reseller choices) and session (pin_ref)
        pass

    request = _Request()
    request.user = user
    request.session = session if session is not None else {}
    if queryset is None:
        queryset = cards_visible_to(user)
    return CardFilter(data=filters or {}, queryset=queryset, request=request)


def card_list(*, filters=None, user, session=None) -> QuerySet:
    """The cards the current Advanced Search selects, newest first. See the module docstring."""
    search = card_search(filters=filters, user=user, session=session)
    if not search.is_valid():
        form = search.form
        labels = {name: field.label for name, field in form.fields.items()}
        labels["pin_ref"] = labels.get("pin")
        raise InvalidCardSearch(form.errors, labels)
    return search.qs.order_by("-created_at", "-id")


@dataclass(frozen=True)
class CardCount:
    value: int
    exact: bool


def card_count(queryset: QuerySet, *, cap: int = COUNT_CAP) -> CardCount:
    """How many rows `queryset` has, without counting a whole large table.

    Counts at most `cap` + 1 rows; beyond that, PostgreSQL's planner estimate (never below the
    cap) marked inexact. The unfiltered table is estimated from its statistics the same way.
    """
    # Unordered, so PostgreSQL takes the cheapest way to the first cap + 1 rows: the filter's
    # index (index-only for most fields), or, for a filter most rows match, a sequential scan
    # that stops after about cap + 1 rows (bounded by the LIMIT: never the whole table).
    counted = queryset.order_by()[: cap + 1].count()
    if counted <= cap:
        return CardCount(counted, True)
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return CardCount(queryset.order_by().count(), True)
    plan = json.loads(queryset.order_by().explain(format="json"))
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    return CardCount(max(estimate, cap + 1), False)


def exceeds(queryset: QuerySet, limit: int) -> bool:
    """Whether `queryset` has more than `limit` rows, counting no further than limit + 1."""
    return queryset.order_by()[: limit + 1].count() > limit


def card_history(card: TopUpCard) -> QuerySet:
    """A card's audit trail: its own events and its batch's generation, newest first."""
    condition = Q(card=card)
    if card.batch_id:
        condition |= Q(batch_id=card.batch_id, kind=CardEventKind.GENERATED)
    return CardEvent.objects.filter(condition).select_related("actor", "subscriber")


def events_visible_to(user) -> QuerySet:
    events = CardEvent.objects.all()
    scoped = staff_reseller(user)
    if scoped is None:
        return events
    return events.filter(Q(card__reseller=scoped) | Q(batch__reseller=scoped))


def batches_visible_to(user) -> QuerySet:
    batches = CardBatch.objects.all()
    scoped = staff_reseller(user)
    return batches.filter(reseller=scoped) if scoped is not None else batches


def jobs_visible_to(user) -> QuerySet:
    """Background jobs: generations for who may see them, Mass Edit / Delete all jobs for who may
    mass edit / delete cards; a reseller-scoped user sees only those for their reseller."""
    jobs = CardJob.objects.all()
    if user is not None:
        needs = {
            CardJobKind.GENERATE: "cards.view_cardjob",
            CardJobKind.MASS_EDIT: "cards.change_topupcard",
            CardJobKind.DELETE_ALL: "cards.delete_topupcard",
        }
        kinds = [kind for kind, perm in needs.items() if user.has_perm(perm)]
        # Import files are checked against every card's PIN: only who may import sees them.
        if user.has_perm("cards.add_topupcard") and pin_import_refusal(user) is None:
            kinds.append(CardJobKind.IMPORT)
        jobs = jobs.filter(kind__in=kinds)
    scoped = staff_reseller(user)
    return jobs.filter(params__reseller_id=scoped.pk) if scoped is not None else jobs


def batch_figures(batch: CardBatch) -> dict:
    """Live figures of a batch's remaining cards: how many of each status, value outstanding."""
    cards = TopUpCard.objects.filter(batch=batch).order_by()
    conditions = status_conditions()
    # Counted under names no field has: an aggregate named "blocked" would shadow the column in
    # the conditions resolved after it.
    counted = {f"n_{status}": Count("id", filter=q) for status, q in conditions.items()}
    totals = cards.aggregate(
        total=Count("id"),
        outstanding=Sum("amount", filter=conditions[CardStatus.NEW]),
        **counted,
    )
    figures = {str(status): totals[f"n_{status}"] for status in conditions}
    figures["total"] = totals["total"]
    figures["outstanding"] = totals["outstanding"] or Decimal("0.00")
    figures["deleted"] = batch.quantity - totals["total"]
    return figures


NO_RESELLER_KEY = "none"
"""`series_proposals`' key for cards without a reseller (the Generate form's choice value)."""


def series_proposals(*, user) -> dict[str, str]:
    """The series Generate proposes, by the Reseller select's value: the reseller's latest
    series (the highest it owns; `NO_RESELLER_KEY` for cards without one); under "" the next
    free series, for no reseller chosen yet and every reseller without a series. Free means no
    card, batch or import ever used it, so it suits any reseller (docs/cards.md, "Serial
    number").

    Two queries, whatever the number of series: the highest series per owner, and the highest
    overall. Series are compared as numbers (`Cast`); an owner's highest whose text differs
    (leading zeros, "04") is not proposed, to never propose another owner's series."""
    scoped = staff_reseller(user)
    series = CardSeries.objects.order_by().annotate(n=Cast("series", BigIntegerField()))
    owners = series.filter(reseller=scoped) if scoped is not None else series
    highest = {
        row["reseller_id"]: row["top"]
        for row in owners.values("reseller_id").annotate(top=Max("n"))
    }
    taken = {
        (name, owner)
        for name, owner in CardSeries.objects.filter(
            series__in=[str(top) for top in highest.values()]
        ).values_list("series", "reseller_id")
    }
    top = series.aggregate(top=Max("n"))["top"] or 0
    free = str(top + 1) if top + 1 < 10**SERIES_MAX_DIGITS else ""
    proposals = {"": free}
    for reseller_id, own in highest.items():
        if (str(own), reseller_id) in taken:
            proposals[NO_RESELLER_KEY if reseller_id is None else str(reseller_id)] = str(own)
    return proposals


def series_proposal(proposals: dict[str, str], choice: str) -> str:
    """The series proposed for a Reseller select value (a reseller without series: a free one)."""
    return proposals.get(choice, proposals.get("", ""))
