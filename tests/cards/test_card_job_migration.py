"""GenerationJob became CardJob: a database migrated forward keeps its jobs (a queued one still
runs) and the permissions its users and groups held, with no duplicate permission."""

import datetime as dt
import importlib

import pytest
from django.apps import apps as global_apps
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone

from cards.jobs import run_generation_job
from cards.models import CardBatch, CardJob
from cards.models.jobs import CardJobStatus
from tests.cards.test_jobs import run_worker
from tests.factories import UserFactory

BEFORE = ("cards", "0004_background_job_kinds")
ACTIONS = ("add", "change", "delete", "view")


def job_permissions() -> list[tuple[str, str, str]]:
    return sorted(
        Permission.objects.filter(
            content_type__app_label="cards", codename__endswith="job"
        ).values_list("content_type__model", "codename", "name")
    )


@pytest.mark.django_db(transaction=True)
def test_a_database_migrated_forward_keeps_its_jobs_and_who_may_see_them(client):
    try:
        call_command("migrate", *BEFORE, verbosity=0)
        old_apps = MigrationExecutor(connection).loader.project_state(BEFORE).apps
        job = old_apps.get_model("cards", "GenerationJob").objects.create(
            params={
                "series": "8",
                "quantity": 3,
                "amount": "5.00",
                "currency": "USD",
                "pin_length": 12,
                "reseller_id": None,
                "expires_at": (timezone.now() + dt.timedelta(days=30)).isoformat(),
            },
            total=3,
        )
        run_generation_job.enqueue(job.pk)  # queued before the upgrade, by its import path
        clerk = UserFactory(username="clerk", is_staff=True)
        clerk.user_permissions.add(Permission.objects.get(codename="view_generationjob"))
        operators = Group.objects.create(name="Operators")
        operators.permissions.add(Permission.objects.get(codename="change_generationjob"))
        member = UserFactory(username="member", is_staff=True)
        member.groups.add(operators)

        call_command("migrate", "cards", verbosity=0)
    finally:
        call_command("migrate", verbosity=0)

    assert job_permissions() == [
        ("cardjob", f"{action}_cardjob", f"Can {action} background job") for action in ACTIONS
    ]
    assert not ContentType.objects.filter(app_label="cards", model="generationjob").exists()
    clerk = type(clerk).objects.get(pk=clerk.pk)  # no cached permissions
    member = type(member).objects.get(pk=member.pk)
    assert clerk.has_perm("cards.view_cardjob") and member.has_perm("cards.change_cardjob")
    client.force_login(clerk)
    page = client.get(reverse("admin:cards_cardjob_change", args=[job.pk]))
    assert page.status_code == 200 and "Queued" in page.content.decode()

    run_worker()

    moved = CardJob.objects.get(pk=job.pk)
    assert moved.status == CardJobStatus.SUCCEEDED and moved.batch == CardBatch.objects.get()


@pytest.mark.django_db
def test_an_old_permission_next_to_a_new_one_hands_over_its_holders():
    """A migrate that created the new permissions before the rename (post_migrate) leaves one
    permission of each name, held by everyone who held either."""
    migration = importlib.import_module("cards.migrations.0005_card_job")
    new = Permission.objects.get(codename="view_cardjob")
    old = Permission.objects.create(
        codename="view_generationjob", name="Can view generation job", content_type=new.content_type
    )
    clerk = UserFactory(username="clerk", is_staff=True)
    clerk.user_permissions.add(old)
    auditors = Group.objects.create(name="Auditors")
    auditors.permissions.add(old)

    migration.rename_job_permissions(global_apps, "generationjob", "cardjob")

    assert not Permission.objects.filter(pk=old.pk).exists()
    assert list(clerk.user_permissions.all()) == [new] and list(auditors.permissions.all()) == [new]
