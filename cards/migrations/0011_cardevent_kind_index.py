# Every query of card events by kind also bounds the time, and `cardevent_kind_time` serves it:
# the single-column index on kind and its LIKE twin were two more copies of the column in the
# largest table (docs/scaling.md, "Index choices").

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("cards", "0010_printers_and_dormant_cards"),
    ]

    operations = [
        migrations.AlterField(
            model_name="cardevent",
            name="kind",
            field=models.CharField(
                choices=[
                    ("generated", "Batch generated"),
                    ("edited", "Edited"),
                    ("blocked", "Blocked"),
                    ("unblocked", "Unblocked"),
                    ("deleted", "Deleted"),
                    ("redeemed", "Redeemed"),
                    ("redeem_failed", "Failed redemption"),
                    ("pin_revealed", "PIN revealed"),
                    ("exported", "Exported"),
                    ("imported", "Imported"),
                    ("reversed", "Reversed"),
                    ("pins_checked", "PINs checked"),
                    ("delivered", "Delivered (woken)"),
                    ("print_ordered", "Print ordered"),
                    ("print_downloaded", "Print file downloaded"),
                ],
                max_length=16,
            ),
        ),
    ]
