"""Background jobs (generation, Mass Edit, Delete all): a read-only list and a page whose
progress bar updates live."""

from urllib.parse import urlencode

from django.contrib import admin
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from cards.models import CardJob, CardJobKind, CardJobStatus
from cards.selectors import jobs_visible_to
from common.admin import ReadOnlyAdminMixin

from .display import cards_text, mass_edit_summary


def _elapsed(job: CardJob) -> str:
    seconds = int((timezone.now() - (job.started_at or job.created_at)).total_seconds())
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def mass_job_state(job: CardJob) -> dict:
    """A Mass Edit / Delete all job: its statements report no count, so a running job shows its
    elapsed time (the heartbeat keeps it from looking interrupted) and an indeterminate bar."""
    deleting = job.kind == CardJobKind.DELETE_ALL
    nothing = "No card was deleted." if deleting else "No card was changed."
    if job.is_interrupted:
        label = f"Interrupted: the worker stopped. {nothing}"
    elif job.status == CardJobStatus.FAILED:
        label = f"Failed: {job.error} {nothing}"
    elif job.status == CardJobStatus.SUCCEEDED:
        summary = mass_edit_summary(job.result.get("changed", {}), job.result.get("deleted"))
        label = f"Done: {summary}."
    elif job.status == CardJobStatus.RUNNING:
        verb = "Deleting" if deleting else "Changing"
        label = (
            f"{verb} {cards_text(job.total)}… running for {_elapsed(job)}. "
            "The cards change all at once when it ends."
        )
    else:
        label = "Queued: waiting for a worker (manage.py db_worker)."
    filters = job.params.get("filters", {})
    finished = job.status in (CardJobStatus.SUCCEEDED, CardJobStatus.FAILED)
    return {
        "status": "interrupted" if job.is_interrupted else job.status,
        "done": job.total if job.status == CardJobStatus.SUCCEEDED else 0,
        "total": job.total,
        "percent": job.percent if finished or job.is_interrupted else None,
        "label": label,
        "finished": finished or job.is_interrupted,
        "batch_url": "",
        "link_url": reverse("admin:cards_topupcard_changelist")
        + ("?" + urlencode(filters) if filters else ""),
        "link_text": "Open the search",
    }


def job_state(job: CardJob) -> dict:
    """What the progress page shows; also its JSON endpoint's answer."""
    if job.kind != CardJobKind.GENERATE:
        return mass_job_state(job)
    if job.is_interrupted:
        label = "Interrupted: the worker stopped. No card of this batch was created."
    elif job.status == CardJobStatus.FAILED:
        label = f"Failed: {job.error} No card was created."
    elif job.status == CardJobStatus.SUCCEEDED:
        label = f"Done: {job.total:,} cards created."
    elif job.status == CardJobStatus.RUNNING:
        label = f"Generating… {job.done:,} of {job.total:,} cards written."
    else:
        label = "Queued: waiting for a worker (manage.py db_worker)."
    batch_url = reverse("admin:cards_cardbatch_change", args=[job.batch_id]) if job.batch_id else ""
    return {
        "status": "interrupted" if job.is_interrupted else job.status,
        "done": job.done if job.status != CardJobStatus.SUCCEEDED else job.total,
        "total": job.total,
        "percent": job.percent,
        "label": label,
        "finished": job.status in (CardJobStatus.SUCCEEDED, CardJobStatus.FAILED)
        or job.is_interrupted,
        "batch_url": batch_url,
        "link_url": batch_url,
        "link_text": "Open the batch",
    }


@admin.register(CardJob)
class CardJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "kind", "status_label", "progress", "requested_by", "created_at"]
    list_select_related = ["requested_by"]
    change_form_template = "admin/cards/cardjob/change_form.html"
    list_filter = ["kind"]
    readonly_fields = [
        "kind",
        "status",
        "params",
        "requested_by",
        "done",
        "total",
        "batch",
        "error",
        "result",
        "created_at",
        "started_at",
        "finished_at",
    ]
    exclude = ["task_id", "heartbeat_at"]

    class Media:
        css = {"all": ["cards/admin.css"]}

    def has_view_permission(self, request, obj=None):
        # Who may mass edit or delete cards follows their own jobs (the queryset narrows kinds).
        return super().has_view_permission(request, obj) or any(
            request.user.has_perm(perm)
            for perm in ("cards.change_topupcard", "cards.delete_topupcard")
        )

    def get_queryset(self, request):
        return jobs_visible_to(request.user)

    def get_urls(self):
        return [
            path(
                "<int:job_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="cards_cardjob_progress",
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
            extra["progress_url"] = reverse("admin:cards_cardjob_progress", args=[job.pk])
        return super().change_view(request, object_id, form_url, extra)

    @admin.display(description="Status")
    def status_label(self, job):
        return "interrupted" if job.is_interrupted else job.get_status_display()

    @admin.display(description="Progress")
    def progress(self, job):
        return format_html(
            '<progress max="100" value="{}"></progress> {}%', job.percent, job.percent
        )
