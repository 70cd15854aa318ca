"""The summary's dormant column on an existing database: a summary built before it counted every
card as not dormant, so the migration builds it again when a batch was ever generated dormant,
and keeps it untouched otherwise (docs/reports.md, "The daily summary")."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from cards.models import TopUpCard
from cards.services.generation import card_batch_generate
from reports.models import CardMovementDay, CardMovementSummary
from reports.selectors.common import end_of_day, start_of_day
from reports.selectors.history.view import movements
from reports.selectors.liability import liability
from tests.factories import BalanceTemplateFactory, ResellerFactory

BEFORE = ("reports", "0002_movement_summary")


def _generate(series: str, *, dormant: bool, days_ago: int) -> None:
    BalanceTemplateFactory(currency="USD")
    card_batch_generate(
        series=series,
        quantity=3,
        amount="10.00",
        currency="USD",
        pin_length=12,
        reseller=ResellerFactory(),
        expires_at=timezone.now() + dt.timedelta(days=90),
        dormant=dormant,
    )
    TopUpCard.objects.filter(series=series).update(
        created_at=timezone.now() - dt.timedelta(days=days_ago)
    )


def _summary_as_before(until: dt.date) -> list[int]:
    """The summary as 0002's code wrote it: the same movements, without the dormant flag."""
    old_apps = MigrationExecutor(connection).loader.project_state(BEFORE).apps
    day_model = old_apps.get_model("reports", "CardMovementDay")
    rows = movements(since=None, until=start_of_day(until))
    made = day_model.objects.bulk_create(
        day_model(**{k: v for k, v in row.items() if k != "dormant"}) for row in rows
    )
    old_apps.get_model("reports", "CardMovementSummary").objects.create(until=until)
    return sorted(row.pk for row in made)


@pytest.mark.django_db(transaction=True)
def test_a_summary_without_the_dormant_flag_is_built_again_when_dormant_cards_exist():
    today = timezone.localdate()
    try:
        call_command("migrate", *BEFORE, verbosity=0)
        _generate("61", dormant=True, days_ago=3)
        _generate("62", dormant=False, days_ago=3)
        old_ids = _summary_as_before(today)
        call_command("migrate", "reports", verbosity=0)
    finally:
        call_command("migrate", verbosity=0)

    assert sorted(CardMovementDay.objects.values_list("pk", flat=True)) != old_ids
    assert CardMovementSummary.objects.get().until <= today
    values = sorted(
        r["dormant_value"] for r in liability(as_of=end_of_day(today - dt.timedelta(days=1)))
    )
    assert values == [Decimal("0.00"), Decimal("30.00")]


@pytest.mark.django_db(transaction=True)
def test_a_summary_is_kept_as_it_is_when_no_batch_was_ever_dormant():
    today = timezone.localdate()
    try:
        call_command("migrate", *BEFORE, verbosity=0)
        _generate("63", dormant=False, days_ago=3)
        old_ids = _summary_as_before(today)
        call_command("migrate", "reports", verbosity=0)
    finally:
        call_command("migrate", verbosity=0)

    assert sorted(CardMovementDay.objects.values_list("pk", flat=True)) == old_ids
    assert not CardMovementDay.objects.filter(dormant=True).exists()
    assert CardMovementSummary.objects.get().until == today
