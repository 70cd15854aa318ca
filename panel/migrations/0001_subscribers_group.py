"""The "Subscribers" group: its members may redeem cards in the client panel (docs/panel.md).

Client onboarding puts each new client in it. The permission is made here if post_migrate has
not made it yet (a fresh database migrates every app before any permission exists).
"""

from django.db import migrations

GROUP = "Subscribers"


def create_group(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    card_type, _ = ContentType.objects.get_or_create(app_label="cards", model="topupcard")
    redeem, _ = Permission.objects.get_or_create(
        content_type=card_type,
        codename="redeem_card",
        defaults={"name": "Can redeem a top-up card in the client panel"},
    )
    group, _ = Group.objects.get_or_create(name=GROUP)
    group.permissions.add(redeem)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("cards", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_group, migrations.RunPython.noop)]
