"""Background generation jobs: a read-only list and a page whose progress bar updates live."""

from django.contrib import admin
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from cards.models import GenerationJob, GenerationJobStatus
from cards.selectors import jobs_visible_to


def job_state(job: GenerationJob) -> dict:
    """What the progress page shows; also its JSON endpoint's answer."""
    if job.is_interrupted:
        label = "Interrupted: the worker stopped. No card of this batch was created."
    elif job.status == GenerationJobStatus.FAILED:
        label = f"Failed: {job.error} No card was created."
    elif job.status == GenerationJobStatus.SUCCEEDED:
        label = f"Done: {job.total:,} cards created."
    elif job.status == GenerationJobStatus.RUNNING:
        label = f"Generating… {job.done:,} of {job.total:,} cards written."
    else:
        label = "Queued: waiting for a worker (manage.py db_worker)."
    batch_url = reverse("admin:cards_cardbatch_change", args=[job.batch_id]) if job.batch_id else ""
    return {
        "status": "interrupted" if job.is_interrupted else job.status,
        "done": job.done if job.status != GenerationJobStatus.SUCCEEDED else job.total,
        "total": job.total,
        "percent": job.percent,
        "label": label,
        "finished": job.status in (GenerationJobStatus.SUCCEEDED, GenerationJobStatus.FAILED)
        or job.is_interrupted,
        "batch_url": batch_url,
    }


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status_label", "progress", "requested_by", "created_at"]
    list_select_related = ["requested_by"]
    change_form_template = "admin/cards/generationjob/change_form.html"
    readonly_fields = [
        "status",
        "params",
        "requested_by",
        "done",
        "total",
        "batch",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    ]
    exclude = ["task_id", "heartbeat_at"]

    class Media:
        css = {"all": ["cards/admin.css"]}

    def get_queryset(self, request):
        return jobs_visible_to(request.user)

    def get_urls(self):
        return [
            path(
                "<int:job_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="cards_generationjob_progress",
            ),
            *super().get_urls(),
        ]

    def progress_view(self, request, job_id: int):
        if not self.has_view_permission(request):
            return JsonResponse({"error": "Not allowed."}, status=403)
        return JsonResponse(job_state(get_object_or_404(self.get_queryset(request), pk=job_id)))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        job = self.get_object(request, object_id)
        if job is not None:  # else the admin's "doesn't exist" redirect
            extra["job_state"] = job_state(job)
            extra["progress_url"] = reverse("admin:cards_generationjob_progress", args=[job.pk])
        return super().change_view(request, object_id, form_url, extra)

    @admin.display(description="Status")
    def status_label(self, job):
        return "interrupted" if job.is_interrupted else job.get_status_display()

    @admin.display(description="Progress")
    def progress(self, job):
        return format_html(
            '<progress max="100" value="{}"></progress> {}%', job.percent, job.percent
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
