"""Periodic intervals: a periodic balance keeps an interval for "now" for as long as it lives.

Intervals are made from the template's period (docs/balance-rules.md, "Periodic intervals"): when
a top-up, an adjustment or a reading needs the current one, when a validity change adds time, and
ahead of time by the worker's recurring task (wallets/tasks.py). A new interval holds zero, so
making one is no change of an amount and writes no ledger entry.

Every caller holds the balance's row lock while it reads the intervals and adds the missing ones,
so two requests at a period boundary make one interval, never two overlapping ones; the unique
(balance, start_time) index is the last word if anything writes intervals without that lock.
"""

import datetime as dt
import logging

from django.db import transaction
from django.db.models import F, Max, Min, Q, QuerySet, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from ..durations import PeriodGrid, RelativeTime, parse_period
from ..exceptions import BadData
from ..models import Balance, BalanceInterval, BalanceKind
from .ledger import lock_balance

logger = logging.getLogger(__name__)

# How far ahead of now intervals are made: longer than the recurring task's pause
# (wallets/tasks.py), so the next interval exists before its period begins.
INTERVALS_AHEAD = dt.timedelta(days=7)
# How far back missing intervals are made: time before that is never live again, and a start
# moved decades back (S2) or a balance dated long ago must not cost a row per day of it.
INTERVALS_BEHIND = dt.timedelta(days=366)

Span = tuple[dt.datetime, dt.datetime]


def intervals_horizon(now: dt.datetime | None = None) -> dt.datetime:
    return (now or timezone.now()) + INTERVALS_AHEAD


def template_period(balance: Balance) -> RelativeTime:
    period = parse_period(balance.template.period)
    if period is None:
        raise BadData("The periodic balance's template has no valid period.", rule="T3")
    return period


def missing_intervals(
    existing: list[Span],
    *,
    period: RelativeTime,
    start: dt.datetime,
    end: dt.datetime | None,
    until: dt.datetime,
    since: dt.datetime,
) -> list[Span]:
    """The intervals to add so that every moment from `start` (or `since`, when later) to `until`
    (inclusive) before `end` lies in exactly one interval. `existing`: the balance's intervals,
    sorted by start.

    The grid is anchored at the first interval (the balance's start when there is none), so the
    intervals already made keep their cadence when the start moves earlier (S2); time before the
    first interval gets whole periods, time after the last one continues the grid. A gap between
    intervals someone typed off the grid is filled up to the next one, never over it.
    """

    def needed(moment: dt.datetime) -> bool:
        return moment <= until and (end is None or moment < end)

    zone = timezone.get_default_timezone()
    anchor = existing[0][0] if existing else start
    grid = PeriodGrid(timezone.localtime(anchor, zone), period)
    spans: list[Span] = []

    def fill(moment: dt.datetime, limit: dt.datetime | None) -> None:
        if limit is not None and limit <= since:
            return
        if moment < since:
            moment = max(moment, grid.at(grid.index(timezone.localtime(since, zone))))
        index = grid.index(timezone.localtime(moment, zone))
        while needed(moment) and (limit is None or moment < limit):
            try:
                stop = grid.at(index + 1)
            except OverflowError:
                return
            if limit is not None:
                stop = min(stop, limit)
            spans.append((moment, stop))
            moment, index = stop, index + 1

    if not existing:
        fill(grid.at(0), None)
        return spans
    if start < anchor:
        fill(grid.at(grid.index(timezone.localtime(start, zone))), anchor)
    covered = existing[0][1]
    for span_start, span_end in existing[1:]:
        if span_start > covered:
            fill(covered, span_start)
        covered = max(covered, span_end)
    fill(covered, None)
    return spans


def ensure_locked_intervals(locked: Balance, *, until: dt.datetime) -> int:
    """Add the intervals `locked` lacks up to `until`; the caller holds its row lock.
    Returns how many were made (0 for any other kind of balance)."""
    assert transaction.get_connection().in_atomic_block, "call balance_intervals_ensure instead"
    if locked.template.kind != BalanceKind.PERIODIC:
        return 0
    existing = list(locked.intervals.order_by("start_time").values_list("start_time", "end_time"))
    spans = missing_intervals(
        existing,
        period=template_period(locked),
        start=locked.start_time,
        end=locked.end_time,
        until=until,
        since=timezone.now() - INTERVALS_BEHIND,
    )
    BalanceInterval.objects.bulk_create(
        [BalanceInterval(balance=locked, start_time=s, end_time=e) for s, e in spans],
        batch_size=500,
        ignore_conflicts=True,
    )
    if spans:
        logger.info("Balance %s: %d periodic interval(s) made", locked.pk, len(spans))
    return len(spans)


@transaction.atomic
def balance_intervals_ensure(*, balance_id: int, until: dt.datetime | None = None) -> int:
    """Make sure the periodic balance `balance_id` has its intervals, without gap or overlap,
    from its start up to `until` (default: INTERVALS_AHEAD from now) or its end. Idempotent: a
    second call adds nothing. Returns how many intervals were made; any other kind: 0."""
    return ensure_locked_intervals(lock_balance(balance_id), until=until or intervals_horizon())


def balances_short_of_intervals(*, now, until) -> QuerySet[Balance]:
    """Periodic balances, live or starting by `until`, whose intervals do not reach from their
    start to `until` (or to their end, when sooner): the recurring task's work list."""
    return (
        Balance.objects.filter(
            Q(end_time__isnull=True) | Q(end_time__gt=now),
            template__kind=BalanceKind.PERIODIC,
            start_time__lte=until,
        )
        .annotate(covered_from=Min("intervals__start_time"), covered_to=Max("intervals__end_time"))
        .filter(
            Q(covered_to__isnull=True)
            | Q(covered_from__gt=Greatest(F("start_time"), Value(now - INTERVALS_BEHIND)))
            | Q(end_time__lte=until, covered_to__lt=F("end_time"))
            | (Q(end_time__isnull=True) | Q(end_time__gt=until)) & Q(covered_to__lte=until)
        )
        .order_by("pk")
    )


def periodic_intervals_extend(*, now: dt.datetime | None = None) -> int:
    """Make every live or coming periodic balance's intervals reach INTERVALS_AHEAD from now,
    one balance per transaction (a failure leaves the others done). Returns how many were made.
    """
    now = now or timezone.now()
    until = intervals_horizon(now)
    made = 0
    for balance_id in (
        balances_short_of_intervals(now=now, until=until).values_list("pk", flat=True).iterator()
    ):
        try:
            made += balance_intervals_ensure(balance_id=balance_id, until=until)
        except BadData:
            logger.warning(
                "Balance %s: no intervals made: its template has no valid period", balance_id
            )
    return made


def current_interval(balance: Balance, at=None) -> BalanceInterval | None:
    at = at or timezone.now()
    return balance.intervals.live(at).first()


def credit_interval_id(locked: Balance, now: dt.datetime) -> int | None:
    """T3: a periodic balance is credited in its current interval only, made from the period
    when it is missing. The caller holds `locked`'s row lock."""
    if locked.template.kind != BalanceKind.PERIODIC:
        return None
    interval = current_interval(locked, now)
    if interval is None and ensure_locked_intervals(locked, until=intervals_horizon(now)):
        interval = current_interval(locked, now)
    if interval is None:
        raise BadData("The periodic balance has no current interval.", rule="T3")
    return interval.pk
