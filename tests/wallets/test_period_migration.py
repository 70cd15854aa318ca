"""A template's period moved from a fixed length to an ISO 8601 duration (migration 0004): a
database migrated forward keeps every template's period, and back again."""

import datetime as dt

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from wallets.models import BalanceTemplate

BEFORE = ("wallets", "0003_rate_counter")
AFTER = ("wallets", "0004_template_period_iso")


@pytest.mark.django_db(transaction=True)
def test_a_database_migrated_forward_and_back_keeps_each_templates_period():
    lengths = {
        "Monthly": dt.timedelta(days=30),
        "Weekly": dt.timedelta(weeks=1),
        "Day and a half": dt.timedelta(days=1, hours=12),
        "Hourly": dt.timedelta(hours=1),
    }
    try:
        call_command("migrate", *BEFORE, verbosity=0)
        old = MigrationExecutor(connection).loader.project_state(BEFORE).apps
        Template = old.get_model("wallets", "BalanceTemplate")
        for name, length in lengths.items():
            Template.objects.create(name=name, kind="periodic", currency="MB", period=length)
        Template.objects.create(name="Simple", kind="simple", currency="USD")

        call_command("migrate", *AFTER, verbosity=0)
        forward = dict(BalanceTemplate.objects.values_list("name", "period"))

        call_command("migrate", *BEFORE, verbosity=0)
        old = MigrationExecutor(connection).loader.project_state(BEFORE).apps
        back = dict(
            old.get_model("wallets", "BalanceTemplate").objects.values_list("name", "period")
        )
    finally:
        call_command("migrate", verbosity=0)

    assert forward == {
        "Monthly": "P30D",
        "Weekly": "P7D",
        "Day and a half": "P1DT12H",
        "Hourly": "PT1H",
        "Simple": None,
    }
    assert back == {**lengths, "Simple": None}
