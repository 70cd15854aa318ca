"""The daily summary of the cards' liability movements (reports/README.md, "Speed").

Closed days only: a day's movements are added up once it closed REPORTS_SUMMARY_SETTLE ago and
never touched again (what happened on a closed day does not change; later changes are movements
of their own day). The reports sum the summary for the days it covers and replay only the days
after it, so a summary that lags makes pages slower, never wrong.
"""

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from wallets.sql import advisory_lock

from ..models import CardMovementDay, CardMovementSummary
from ..selectors.common import start_of_day
from ..selectors.history.view import movements

LOCK = "reports.movement_summary"


def settled_day(now: dt.datetime | None = None) -> dt.date:
    """The first day not yet closed for REPORTS_SUMMARY_SETTLE: days before it may be summarized."""
    return timezone.localdate((now or timezone.now()) - settings.REPORTS_SUMMARY_SETTLE)


@transaction.atomic
def movement_summary_extend(*, until: dt.date | None = None, actor=None) -> int:
    """Summarize every closed day not summarized yet, up to (not including) `until` (default:
    `settled_day()`, never later). Returns how many movement rows it wrote. Two runs at once take
    turns; the second finds the days done. `actor` is unused: no person's change, only a cache
    of figures the audit events already hold."""
    target = min(until or settled_day(), settled_day())
    advisory_lock(LOCK)
    state = CardMovementSummary.objects.select_for_update().first()
    since = state.until if state else None
    if since is not None and since >= target:
        return 0
    rows = movements(
        since=start_of_day(since) if since is not None else None, until=start_of_day(target)
    )
    CardMovementDay.objects.bulk_create(
        (CardMovementDay(**row) for row in rows if row["day"] < target), batch_size=5000
    )
    if state is None:
        CardMovementSummary.objects.create(until=target)
    else:
        state.until = target
        state.save(update_fields=["until", "updated_at"])
    return len(rows)


@transaction.atomic
def movement_summary_rebuild(*, actor=None) -> int:
    """Forget the summary and build it again from the audit events (after a repair of the data,
    or when the definitions in reports.selectors.history change)."""
    advisory_lock(LOCK)
    CardMovementDay.objects.all().delete()
    CardMovementSummary.objects.all().delete()
    return movement_summary_extend(actor=actor)
