"""A queued job is stored in the database by its task's import path (django-tasks-db's
`DBTaskResult.task_path`), and the worker imports that path when it picks the job up. A job
queued before an upgrade therefore runs after it only while its path still names the task, and
a job queued by an upgraded app server runs on a worker not upgraded yet only while new jobs are
stored under the same paths (cards/jobs/__init__.py)."""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks.base import Task
from django_tasks_db.models import DBTaskResult

from cards.import_storage import forget_import_upload
from cards.jobs.generation import generation_job_start
from cards.jobs.imports import import_job_start
from cards.jobs.mass import mass_edit_job_start
from cards.jobs.printing import print_order_start
from cards.models import CardJob, PrintOrder, TopUpCard
from cards.models.jobs import CardJobStatus
from cards.services.generation import card_batch_generate
from cards.services.printing import printer_register
from tests.cards.gpg_keys import needs_gpg
from tests.factories import TopUpCardFactory

# Every path a queued card job can hold: the tasks of cards/jobs.py as it was before it became
# the cards/jobs/ package. Written out, not computed, so that moving a task fails here.
TASK_PATHS = [
    "cards.jobs.run_generation_job",
    "cards.jobs.run_mass_job",
    "cards.jobs.run_import_job",
    "cards.jobs.run_print_order",
]


@pytest.mark.parametrize("path", TASK_PATHS)
def test_every_stored_task_path_still_names_its_task(path):
    queued = DBTaskResult(
        task_path=path, priority=0, queue_name="default", backend_name="default", run_after=None
    )

    task = queued.task  # what the worker does with the row: import the path, accept only a Task

    assert isinstance(task, Task)
    assert task.module_path == path  # and a job queued now is stored under the same path


EXPIRES = timezone.now() + dt.timedelta(days=30)


def queue_generation(actor):
    generation_job_start(
        series="8",
        quantity=3,
        amount="5.00",
        currency="USD",
        pin_length=12,
        reseller=None,
        expires_at=EXPIRES,
        actor=actor,
    )
    return lambda: TopUpCard.objects.filter(series="8").count() == 3


def queue_mass_edit(actor):
    for number in (1, 2, 3):
        TopUpCardFactory(series="5", number=number, expires_at=EXPIRES)
    mass_edit_job_start(filters={"series": "5"}, expected=3, changes={"blocked": True}, actor=actor)
    return lambda: TopUpCard.objects.filter(series="5", blocked=True).count() == 3


def queue_import_check(actor):
    text = (
        "Serial Number,Amount,Currency,PIN Code,Reseller,Expiry Date\n"
        "41-000000001,10.00,USD,918273645546,,2030-01-01\n"
    )
    import_job_start(
        chunks=[text.encode()], file_format="csv", file_name="cards.csv", rows=1, actor=actor
    )
    return lambda: CardJob.objects.get().result.get("rows") == 1


def queue_print_order(actor, house):
    fingerprint = house.make_key("Acme Print <press@acme.invalid>")
    printer = printer_register(
        name="Acme Print", public_key=house.public_key(fingerprint), actor=actor
    )
    batch = card_batch_generate(
        series="7",
        quantity=2,
        amount="25.00",
        currency="USD",
        pin_length=12,
        reseller=None,
        expires_at=EXPIRES,
        actor=actor,
    ).batch
    print_order_start(printer=printer, layout="standard", batch=batch, actor=actor)
    return lambda: PrintOrder.objects.get().rows == 2


QUEUES = {
    "cards.jobs.run_generation_job": queue_generation,
    "cards.jobs.run_mass_job": queue_mass_edit,
    "cards.jobs.run_import_job": queue_import_check,
    "cards.jobs.run_print_order": queue_print_order,
}


def the_job_succeeded() -> bool:
    jobs = [*CardJob.objects.values_list("status", flat=True)]
    jobs += PrintOrder.objects.values_list("status", flat=True)
    return jobs == [CardJobStatus.SUCCEEDED]


@pytest.mark.django_db(transaction=True)  # the worker commits and reconnects like a real one
@pytest.mark.parametrize(
    "path",
    [
        pytest.param(path, marks=[needs_gpg] if path.endswith("print_order") else [])
        for path in TASK_PATHS
    ],
)
def test_a_job_queued_under_each_path_is_run_by_the_worker(path, admin_user, request):
    queue = QUEUES[path]
    if queue is queue_print_order:
        done = queue(admin_user, request.getfixturevalue("printing_house"))
    else:
        done = queue(admin_user)
    # An upload also queues its own removal, due when it expires (cards.import_storage).
    queued = DBTaskResult.objects.exclude(task_path=forget_import_upload.module_path)
    assert list(queued.values_list("task_path", flat=True)) == [path]

    call_command(
        "run_worker", "--batch", "--no-startup-delay", stdout=StringIO(), stderr=StringIO()
    )

    assert the_job_succeeded() and done()
