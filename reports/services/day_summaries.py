"""The daily summaries of the Redemptions and Balances reports (reports/README.md, "Speed").

As the liability movements' summary (services/summary.py): closed days only, each added up once
when it closed REPORTS_SUMMARY_SETTLE ago, in one transaction per run, runs taking turns. The
reports read a summary for the days it holds and compute the days after it live, so a summary
that lags makes pages slower, never wrong. What makes a closed day final: a redeemed card never
changes again but for its reversal (Mass Edit and Delete all skip redeemed cards), and ledger
entries are never changed or deleted. A reversal is appended as its own row under the day of
the redemption it reverses, by the run that summarizes the day of the reversal.
"""

import datetime as dt
from collections.abc import Iterable
from itertools import islice

from django.db import models, transaction
from django.utils import timezone

from wallets.sql import advisory_lock

from ..models import DaySummary, LedgerFlowDay, RedemptionDay
from ..selectors import balances, redemptions
from ..selectors.common import as_date, start_of_day
from .summary import settled_day

BATCH = 5000


def _extend(name: str, model: type[models.Model], until: dt.date | None, write) -> int:
    """Take the lock of summary `name`, then summarize the closed days after it up to `until`
    (never past `settled_day()`): `write(since, until)` (instants; `since` None from the
    beginning) writes their rows and returns how many. A summary of another time zone than
    the site's is dropped first: its days are not the reports' days."""
    target = min(until or settled_day(), settled_day())
    advisory_lock(f"reports.day_summary.{name}")
    time_zone = timezone.get_current_timezone_name()
    state = DaySummary.objects.select_for_update().filter(name=name).first()
    if state is not None and state.time_zone != time_zone:
        model.objects.all().delete()
        state.delete()
        state = None
    if state is None:
        model.objects.all().delete()  # rows without a state are not trusted: start again
    since = state.until if state else None
    if since is not None and since >= target:
        return 0
    written = write(start_of_day(since) if since is not None else None, start_of_day(target))
    if state is None:
        DaySummary.objects.create(name=name, until=target, time_zone=time_zone)
    else:
        state.until = target
        state.save(update_fields=["until", "updated_at"])
    return written


def _save(model: type[models.Model], objects: Iterable[models.Model]) -> int:
    """Insert in batches, never holding every row in memory (bulk_create makes a list)."""
    objects = iter(objects)
    written = 0
    while batch := list(islice(objects, BATCH)):
        model.objects.bulk_create(batch)
        written += len(batch)
    return written


@transaction.atomic
def redemption_summary_extend(*, until: dt.date | None = None, actor=None) -> int:
    """Summarize the redemptions of every closed day not summarized yet, and append the
    reversals made on those days of cards redeemed earlier. Returns the rows written. `actor`
    is unused: a cache of figures the cards already hold, no person's change."""

    def write(since, end) -> int:
        keys = redemptions.SUMMARY_KEYS
        rows = redemptions.redeemed_rows(since=since, until=end, keys=keys, reversed_before=end)
        written = _save(RedemptionDay, (_redemption_day(row) for row in rows.iterator(BATCH)))
        if since is not None:
            reversed_cards = redemptions.reversed_since(since).filter(reversed_at__lt=end)
            later = redemptions.redeemed_rows(
                since=None, until=since, keys=keys, cards=reversed_cards
            )
            reversals = (
                _redemption_day({**row, "count": 0, "value": 0}) for row in later.iterator(BATCH)
            )
            written += _save(RedemptionDay, reversals)
        return written

    return _extend(redemptions.SUMMARY, RedemptionDay, until, write)


def _redemption_day(row: dict) -> RedemptionDay:
    return RedemptionDay(
        day=as_date(row["period"]),
        currency=row["currency"],
        reseller_id=row["reseller_id"],
        series=row["series"],
        channel=row["channel"] or "",
        cards=row["count"],
        value=row["value"],
        reversed_value=row["reversed_value"],
    )


@transaction.atomic
def ledger_summary_extend(*, until: dt.date | None = None, actor=None) -> int:
    """Summarize the ledger entries of every closed day not summarized yet, under the reseller
    each wallet's subscriber has now (docs/reports.md, "Balances"). Returns the rows written."""

    def write(since, end) -> int:
        rows = balances.flow_rows(since=since, until=end, keys=tuple(balances.FLOW_KEYS))
        fields = (*balances.FLOW_KEYS, *balances.FIGURES)
        return _save(
            LedgerFlowDay,
            (
                LedgerFlowDay(day=as_date(row["period"]), **{k: row[k] for k in fields})
                for row in rows.iterator(BATCH)
            ),
        )

    return _extend(balances.SUMMARY, LedgerFlowDay, until, write)


def day_summaries_extend(*, until: dt.date | None = None, actor=None) -> int:
    """Both summaries, each in its own transaction (one failing leaves the other's work)."""
    return redemption_summary_extend(until=until, actor=actor) + ledger_summary_extend(
        until=until, actor=actor
    )


@transaction.atomic
def day_summaries_rebuild(*, actor=None) -> int:
    """Forget both summaries and build them again (after a repair of the data)."""
    for name in (redemptions.SUMMARY, balances.SUMMARY):
        advisory_lock(f"reports.day_summary.{name}")
    RedemptionDay.objects.all().delete()
    LedgerFlowDay.objects.all().delete()
    DaySummary.objects.all().delete()
    return day_summaries_extend(actor=actor)
