"""Background jobs of card work and their progress (docs/cards.md, Background jobs); the tasks
that run them are in cards/jobs/."""

import datetime as dt

from django.conf import settings
from django.db import models
from django.utils import timezone

from common.formats import count_text


class CardJobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"


class CardJobKind(models.TextChoices):
    GENERATE = "generate", "Generation"
    MASS_EDIT = "mass_edit", "Mass Edit"
    DELETE_ALL = "delete_all", "Delete all"
    IMPORT = "import", "Import"


SELECTION_AT = "selection_at"
"""Key of a Mass Edit / Delete all job's `result`: when its selection was written (CardJobCard)."""


class CardJob(models.Model):
    """Card work done in the background by the task worker, with its progress: a generated batch,
    or a Mass Edit / Delete all of a selection too large for one request.

    A generation runs in one transaction: a worker killed mid-way leaves no card. A Mass Edit or
    Delete all works in chunks (`CardJobCard`), each committed with its count in `done`: a worker
    killed mid-way leaves exactly `done` cards done, and resuming does the rest. Either shows as
    interrupted once its heartbeat is older than GENERATION_JOB_STALE_SECONDS.
    """

    kind = models.CharField(
        max_length=10, choices=CardJobKind.choices, default=CardJobKind.GENERATE
    )
    status = models.CharField(
        max_length=10, choices=CardJobStatus.choices, default=CardJobStatus.QUEUED
    )
    params = models.JSONField(help_text="The request, as the operator confirmed it.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField()
    batch = models.OneToOneField(
        "CardBatch", on_delete=models.SET_NULL, null=True, blank=True, related_name="job"
    )
    error = models.TextField(blank=True)
    result = models.JSONField(
        default=dict, blank=True, help_text="What a Mass Edit / Delete all changed, per field."
    )
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField("Created on", default=timezone.now)
    started_at = models.DateTimeField("Started", null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField("Finished", null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "background job"

    def __str__(self) -> str:
        cards = count_text(self.total, "card")
        if self.kind == CardJobKind.MASS_EDIT:
            return f"Mass Edit of {cards}"
        if self.kind == CardJobKind.DELETE_ALL:
            return f"Delete all of {cards}"
        if self.kind == CardJobKind.IMPORT:
            verb = "Import" if self.params.get("stage") == "import" else "Check"
            rows = count_text(self.total, "row")
            return f"{verb} of {self.params.get('file_name') or 'a file'} ({rows})"
        return f"Generation of {cards} in series {self.params.get('series')}"

    @property
    def is_interrupted(self) -> bool:
        if self.status != CardJobStatus.RUNNING:
            return False
        beat = self.heartbeat_at or self.started_at or self.created_at
        stale = dt.timedelta(seconds=settings.GENERATION_JOB_STALE_SECONDS)
        return timezone.now() - beat > stale

    @property
    def snapshot_taken(self) -> bool:
        """A Mass Edit / Delete all whose selection is written: its chunks may have run."""
        return SELECTION_AT in (self.result or {})

    @property
    def left(self) -> int:
        """Cards not done yet (each chunk adds what it settled to `done` as it commits)."""
        return max(self.total - self.done, 0)

    @property
    def percent(self) -> int:
        if self.status == CardJobStatus.SUCCEEDED:
            return 100
        return int(100 * self.done / self.total) if self.total else 0


class CardJobCard(models.Model):
    """A card of a Mass Edit / Delete all job's selection not done yet (docs/cards.md, Background
    jobs). The job's first run writes the ids of the selection the operator confirmed, once;
    each chunk then removes its ids in the transaction that changes its cards, so what is left
    is exactly what is still to do. Not a foreign key to the card: a card deleted meanwhile by
    someone else must not take its row (nor block its deletion)."""

    pk = models.CompositePrimaryKey("job_id", "card_id")
    # The primary key's index (job, card) serves every query: no second index on the job.
    job = models.ForeignKey(CardJob, on_delete=models.CASCADE, related_name="+", db_index=False)
    card_id = models.BigIntegerField()

    class Meta:
        verbose_name = "card of a background job"

    def __str__(self) -> str:
        return f"card {self.card_id} of job {self.job_id}"
