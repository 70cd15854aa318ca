"""Series belong to the reseller that first used them (docs/cards.md); PIN checks are audited.

The owner of every series in use is filled in as the rule reads it (cards.services.scope): the
reseller of the series' lowest-numbered card (the first made: numbers only grow), else of its
first batch when all its cards were deleted.
"""

import django.db.models.deletion
from django.db import migrations, models


def fill_series_owners(apps, schema_editor):
    CardSeries = apps.get_model("cards", "CardSeries")
    CardBatch = apps.get_model("cards", "CardBatch")
    TopUpCard = apps.get_model("cards", "TopUpCard")
    used = set(CardSeries.objects.values_list("series", flat=True))
    used |= set(TopUpCard.objects.order_by().values_list("series", flat=True).distinct())
    used |= set(CardBatch.objects.order_by().values_list("series", flat=True).distinct())
    for series in sorted(used):
        first = (
            TopUpCard.objects.filter(series=series).order_by("number").values("reseller_id")[:1]
            or CardBatch.objects.filter(series=series)
            .order_by("created_at", "id")
            .values("reseller_id")[:1]
        )
        owner = first[0]["reseller_id"] if first else None
        CardSeries.objects.update_or_create(series=series, defaults={"reseller_id": owner})


class Migration(migrations.Migration):

    dependencies = [
        ('cards', '0005_card_job'),
        ('subscribers', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='cardseries',
            name='reseller',
            field=models.ForeignKey(blank=True, help_text='The reseller that first used the series (none: cards without a reseller). Only its cards go into the series (docs/cards.md).', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='subscribers.reseller'),
        ),
        migrations.AlterField(
            model_name='cardevent',
            name='kind',
            field=models.CharField(choices=[('generated', 'Batch generated'), ('edited', 'Edited'), ('blocked', 'Blocked'), ('unblocked', 'Unblocked'), ('deleted', 'Deleted'), ('redeemed', 'Redeemed'), ('redeem_failed', 'Failed redemption'), ('pin_revealed', 'PIN revealed'), ('exported', 'Exported'), ('imported', 'Imported'), ('reversed', 'Reversed'), ('pins_checked', 'PINs checked')], db_index=True, max_length=16),
        ),
        migrations.RunPython(fill_series_owners, migrations.RunPython.noop),
    ]
