"""GenerationJob becomes CardJob: it also holds Mass Edit and Delete all jobs.

RenameModel keeps the table's rows (the table is renamed, not recreated). The permissions keep
their rows too, renamed in place: `post_migrate` would otherwise create add_/change_/delete_/
view_cardjob next to the old ones, and the users and groups holding the old ones would lose
access to the job pages.
"""

from django.db import migrations

ACTIONS = ("add", "change", "delete", "view")
VERBOSE_NAME = "background job"


def rename_job_permissions(apps, old: str, new: str) -> None:
    """Move the content type and the four permissions of model `old` to model `new`.

    Django's migrate renames the content type itself (RenameContentType after RenameModel); it
    is done here as well for a migration run without migrate's signals. A permission of the new
    name that exists already (made by an earlier post_migrate) takes over the old one's holders.
    """
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    if not ContentType.objects.filter(app_label="cards", model=new).exists():
        ContentType.objects.filter(app_label="cards", model=old).update(model=new)
    for action in ACTIONS:
        for permission in Permission.objects.filter(
            content_type__app_label="cards", codename=f"{action}_{old}"
        ):
            existing = Permission.objects.filter(
                content_type__app_label="cards", codename=f"{action}_{new}"
            ).first()
            if existing is None:
                permission.codename = f"{action}_{new}"
                permission.name = f"Can {action} {VERBOSE_NAME}"
                permission.save(update_fields=["codename", "name"])
                continue
            existing.group_set.add(*permission.group_set.all())
            existing.user_set.add(*permission.user_set.all())
            permission.delete()


def forwards(apps, schema_editor):
    rename_job_permissions(apps, "generationjob", "cardjob")


def backwards(apps, schema_editor):
    rename_job_permissions(apps, "cardjob", "generationjob")


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("cards", "0004_background_job_kinds"),
    ]

    operations = [
        migrations.RenameModel(old_name="GenerationJob", new_name="CardJob"),
        migrations.RunPython(forwards, backwards),
    ]
