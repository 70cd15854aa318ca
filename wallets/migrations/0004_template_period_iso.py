"""A template's period becomes an ISO 8601 duration (`P1M`): a fixed length cannot say "a calendar
month", which periodic intervals need (docs/balance-rules.md, "Periodic intervals")."""

import datetime as dt
import re

from django.db import migrations, models
from django.db.models import Q

import wallets.durations


def _iso(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{v}{u}" for v, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if v)
    return f"P{days}D" + (f"T{time}" if time else "") if days or not time else f"PT{time}"


def to_iso(apps, schema_editor):
    BalanceTemplate = apps.get_model("wallets", "BalanceTemplate")
    for template in BalanceTemplate.objects.exclude(period_length=None):
        template.period = _iso(template.period_length)
        template.save(update_fields=["period"])


def to_length(apps, schema_editor):
    """Back to a fixed length: a month counts 30 days, a year 365."""
    BalanceTemplate = apps.get_model("wallets", "BalanceTemplate")
    units = {"Y": 365 * 86400, "M": 30 * 86400, "W": 7 * 86400, "D": 86400}
    time_units = {"H": 3600, "M": 60, "S": 1}
    for template in BalanceTemplate.objects.exclude(period=None):
        date, _, time = template.period.lstrip("P").partition("T")
        seconds = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([YMWD])", date))
        seconds += sum(int(n) * time_units[u] for n, u in re.findall(r"(\d+)([HMS])", time))
        template.period_length = dt.timedelta(seconds=seconds)
        template.save(update_fields=["period_length"])


class Migration(migrations.Migration):
    dependencies = [
        ("wallets", "0003_rate_counter"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="balancetemplate", name="template_period_iff_periodic"
        ),
        migrations.RenameField(
            model_name="balancetemplate", old_name="period", new_name="period_length"
        ),
        migrations.AddField(
            model_name="balancetemplate",
            name="period",
            field=models.CharField(
                blank=True,
                help_text="Periodic balances only: the length of one interval, an ISO 8601 duration of at least one day, e.g. P1M (a calendar month), P1W, P30D.",
                max_length=40,
                null=True,
                validators=[wallets.durations.validate_period],
            ),
        ),
        migrations.RunPython(to_iso, to_length),
        migrations.RemoveField(model_name="balancetemplate", name="period_length"),
        migrations.AddConstraint(
            model_name="balancetemplate",
            constraint=models.CheckConstraint(
                condition=Q(kind="periodic", period__isnull=False)
                | (~Q(kind="periodic") & Q(period__isnull=True)),
                name="template_period_iff_periodic",
                violation_error_message="A periodic template needs a period; other kinds have none.",
            ),
        ),
    ]
