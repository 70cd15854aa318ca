"""The worker's tasks for card work (docs/cards.md, Background jobs), on Django's tasks framework
(django-tasks, run by `manage.py run_worker`).

A queued job is stored in the database by its task's import path: `cards.jobs.run_generation_job`,
`cards.jobs.run_mass_job`, `cards.jobs.run_import_job`, `cards.jobs.run_print_order`. The tasks
are defined here, and not in the modules that do the work, so that these paths stay exactly
what they were: a job queued before an upgrade runs after it, and one queued by an upgraded app
server runs on a worker not upgraded yet (tests/cards/test_task_paths.py). Each task only hands
its job to the module of that kind of job:

- `runner`: what every job shares: now or in the background, queueing, claiming and recording
  a job, progress, interrupted jobs;
- `generation`: a large batch; `mass`: Mass Edit / Delete all of a large selection, and resume;
- `imports`: the check and the import of a large file; `printing`: print orders.

Each task imports its module when it runs: those modules queue these tasks, so importing them
here when this package loads would be circular.
"""

from django_tasks import task


@task()
def run_generation_job(job_id: int) -> int | None:
    """Generate the job's batch, then record the outcome on the job."""
    from .generation import generation_job_run

    return generation_job_run(job_id)


@task()
def run_mass_job(job_id: int) -> dict | None:
    """Run a Mass Edit / Delete all job (or the rest of it), then record the outcome."""
    from .mass import mass_job_run

    return mass_job_run(job_id)


@task()
def run_import_job(job_id: int) -> int | None:
    """Check an uploaded file, or import it once confirmed."""
    from .imports import import_job_run

    return import_job_run(job_id)


@task()
def run_print_order(order_id: int) -> int | None:
    """Produce a print order's encrypted file, record how it ended."""
    from .printing import print_order_run

    return print_order_run(order_id)
