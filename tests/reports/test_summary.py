"""The daily summary under attack: parallel runs, a run that fails half-way, a page asked while
it is being built. The reports' figures never depend on whether, or how far, it is built."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from reports.models import CardMovementDay, CardMovementSummary
from reports.selectors.common import end_of_day
from reports.selectors.liability import liability
from reports.services import summary
from reports.services.summary import movement_summary_extend
from tests.factories import ResellerFactory, TopUpCardFactory
from tests.parallel import run_together

D = Decimal
DAY = dt.timedelta(days=1)

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL: set DATABASE_URL=postgres://…"
)


def _history():
    now = timezone.now()
    reseller = ResellerFactory(name="Reseller 1")
    for days in range(1, 11):
        TopUpCardFactory(
            reseller=reseller,
            amount=D(days),
            created_at=now - days * DAY,
            expires_at=now - days * DAY + 5 * DAY,
        )
    return reseller


def _figures():
    today = timezone.localdate()
    return [
        [(r["reseller_id"], r["count"], r["value"]) for r in liability(as_of=end_of_day(day))]
        for day in (today - n * DAY for n in range(12))
    ]


@pytest.mark.django_db
def test_a_run_that_fails_half_way_leaves_no_summary_and_the_figures_unchanged(monkeypatch):
    _history()
    before = _figures()

    def fail(**kwargs):
        raise RuntimeError("the worker died")

    monkeypatch.setattr(summary.CardMovementSummary.objects, "create", fail)
    with pytest.raises(RuntimeError):
        movement_summary_extend()

    assert not CardMovementDay.objects.exists()
    assert not CardMovementSummary.objects.exists()
    assert _figures() == before


@pytest.mark.django_db
def test_the_figures_are_the_same_replayed_or_summarized(monkeypatch):
    _history()
    replayed = _figures()
    movement_summary_extend()
    assert CardMovementDay.objects.exists()
    assert _figures() == replayed


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_runs_summarize_each_day_once():
    _history()
    replayed = _figures()
    workers = 4

    written = run_together([movement_summary_extend] * workers)

    # One run wrote the days; the others, waiting on its lock, found them done.
    assert sorted(written)[:-1] == [0] * (workers - 1) and written.count(0) == workers - 1
    assert CardMovementSummary.objects.count() == 1
    assert CardMovementDay.objects.count() == max(written)
    assert _figures() == replayed
