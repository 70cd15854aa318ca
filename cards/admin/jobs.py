"""Background jobs (generation, Mass Edit, Delete all): a read-only list and a page whose
progress bar updates live."""

import datetime as dt
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from cards.exceptions import CardEditError, ImportRefused
from cards.filters import CardFilter
from cards.jobs.imports import IMPORT_WRITE, import_confirmable, import_job_confirm
from cards.jobs.mass import EXPIRED_NOW, mass_job_resumable, mass_job_resume
from cards.models import CardJob
from cards.models.cards import CardStatus
from cards.models.jobs import CardJobKind, CardJobStatus
from cards.selectors import jobs_visible_to
from common.admin import ReadOnlyAdminMixin
from common.formats import count_text, format_amount
from subscribers.models import Reseller

from .display import cards_text, mass_edit_summary, moment_text

NO_RESELLER = "No reseller: redeemable by every subscriber"


def mass_job_done_text(job: CardJob) -> str:
    """What a Mass Edit / Delete all job has done so far, exactly (its chunks' committed counts):
    "412,000 of 1,000,000 cards done: expiration date changed on …; 3 cards were redeemed
    meanwhile and left as they were"."""
    result = job.result or {}
    text = f"{job.done:,} of {cards_text(job.total)} done"
    summary = mass_edit_summary(result.get("changed", {}), result.get("deleted"))
    if summary:
        text += f": {summary}"
    return text + _left_as_they_were(result)


def _left_as_they_were(result: dict) -> str:
    redeemed = result.get("redeemed", 0)
    other = result.get("skipped", 0) - redeemed
    parts = []
    if redeemed:
        verb = "was" if redeemed == 1 else "were"
        parts.append(f"{cards_text(redeemed)} {verb} redeemed meanwhile and left as they were")
    if other:
        verb = "was" if other == 1 else "were"
        parts.append(f"{cards_text(other)} {verb} deleted or moved to another company meanwhile")
    return "".join(f"; {part}" for part in parts)


def mass_job_state(job: CardJob) -> dict:
    """A Mass Edit / Delete all job: the percentage of its selection done, chunk by chunk; once
    stopped, exactly what it did and whether resuming does the rest."""
    deleting = job.kind == CardJobKind.DELETE_ALL
    nothing = "No card was deleted." if deleting else "No card was changed."
    resumable = mass_job_resumable(job)
    if resumable:
        left = f"Resume to do the other {cards_text(job.left)}; the ones done stay done."
        if job.done:
            done = f"{mass_job_done_text(job)}. {left}"
        else:
            done = f"{nothing} Resume to do all {cards_text(job.left)}."
    else:
        done = nothing
    if job.is_interrupted:
        label = f"Interrupted: the worker stopped. {done}"
    elif job.status == CardJobStatus.FAILED:
        label = f"Failed: {job.error} {done}"
    elif job.status == CardJobStatus.SUCCEEDED:
        summary = mass_edit_summary(job.result.get("changed", {}), job.result.get("deleted"))
        label = f"Done: {summary}{_left_as_they_were(job.result)}."
    elif job.status == CardJobStatus.RUNNING:
        verb = "Deleting" if deleting else "Changing"
        label = (
            f"{verb} {cards_text(job.total)}… {job.done:,} done ({job.percent}%). "
            "Each chunk of cards is changed as it is done; the others still sell meanwhile."
        )
    else:
        label = "Queued: waiting for a worker (manage.py run_worker)."
    filters = job.params.get("filters", {})
    finished = job.status in (CardJobStatus.SUCCEEDED, CardJobStatus.FAILED)
    return {
        "status": "interrupted" if job.is_interrupted else job.status,
        "done": job.done,
        "total": job.total,
        "percent": job.percent,
        "label": label,
        "finished": finished or job.is_interrupted,
        "resumable": resumable,
        "batch_url": "",
        "link_url": reverse("admin:cards_topupcard_changelist")
        + ("?" + urlencode(filters) if filters else ""),
        "link_text": "Open the search",
    }


def import_job_state(job: CardJob) -> dict:
    """The check of an import file, or its import: rows read (or cards written) of the total."""
    checking = job.params.get("stage") != IMPORT_WRITE
    nothing = "No card was imported."
    result = job.result or {}
    link_url, link_text = "", ""
    if job.is_interrupted:
        label = f"Interrupted: the worker stopped. {nothing}"
    elif job.status == CardJobStatus.FAILED:
        label = f"Failed: {job.error} {nothing}"
    elif job.status == CardJobStatus.SUCCEEDED and checking:
        rows, bad = result.get("rows", 0), result.get("error_rows", 0)
        if bad:
            label = (
                f"Checked: {count_text(bad, 'row')} of {rows:,} "
                f"{'has a problem' if bad == 1 else 'have problems'}. Nothing can be imported: "
                "fix the file and upload it again."
            )
        elif rows:
            label = f"Checked: all {count_text(rows, 'row')} can be imported. Confirm below."
        else:
            label = "Checked: the file has no rows."
        link_url = reverse("admin:cards_cardjob_change", args=[job.pk])
        link_text = "Show the check"
    elif job.status == CardJobStatus.SUCCEEDED:
        label = f"Done: {cards_text(result.get('imported', job.total))} imported."
        link_url, link_text = reverse("admin:cards_topupcard_changelist"), "Open the cards"
    elif job.status == CardJobStatus.RUNNING:
        doing = "Checking" if checking else "Importing"
        label = f"{doing}… {job.percent}% of about {count_text(job.total, 'row')}."
        if not checking:
            label += " The cards appear all at once when it ends."
    else:
        label = "Queued: waiting for a worker (manage.py run_worker)."
    finished = job.status in (CardJobStatus.SUCCEEDED, CardJobStatus.FAILED)
    return {
        "status": "interrupted" if job.is_interrupted else job.status,
        "done": job.total if job.status == CardJobStatus.SUCCEEDED else job.done,
        "total": job.total,
        "percent": job.percent,
        "label": label,
        "finished": finished or job.is_interrupted,
        "batch_url": "",
        "link_url": link_url,
        "link_text": link_text,
    }


def import_preview(job: CardJob, user) -> dict | None:
    """The checked file's problems by row, and whether this user may confirm its import."""
    if job.kind != CardJobKind.IMPORT or job.status != CardJobStatus.SUCCEEDED:
        return None
    if job.params.get("stage") == IMPORT_WRITE:
        return None
    result = job.result or {}
    errors = [
        (number, field, message)
        for number, fields in result.get("errors", [])
        for field, messages in fields.items()
        for message in messages
    ]
    refusal = import_confirmable(job, user)
    imported = result.get("import_job")
    return {
        "rows": result.get("rows", 0),
        "error_rows": result.get("error_rows", 0),
        "errors": errors,
        "more": result.get("error_rows", 0) - len(result.get("errors", [])),
        "confirm_url": reverse("admin:cards_cardjob_import_confirm", args=[job.pk])
        if refusal is None
        else "",
        "refusal": refusal if result.get("rows") and not result.get("error_rows") else "",
        "import_url": reverse("admin:cards_cardjob_change", args=[imported]) if imported else "",
    }


def job_state(job: CardJob) -> dict:
    """What the progress page shows; also its JSON endpoint's answer."""
    if job.kind == CardJobKind.IMPORT:
        return import_job_state(job)
    if job.kind != CardJobKind.GENERATE:
        return mass_job_state(job)
    if job.is_interrupted:
        label = "Interrupted: the worker stopped. No card of this batch was created."
    elif job.status == CardJobStatus.FAILED:
        label = f"Failed: {job.error} No card was created."
    elif job.status == CardJobStatus.SUCCEEDED:
        label = f"Done: {cards_text(job.total)} created."
    elif job.status == CardJobStatus.RUNNING:
        label = f"Generating… {job.done:,} of {cards_text(job.total)} written."
    else:
        label = "Queued: waiting for a worker (manage.py run_worker)."
    batch_url = reverse("admin:cards_cardbatch_change", args=[job.batch_id]) if job.batch_id else ""
    return {
        "status": "interrupted" if job.is_interrupted else job.status,
        "done": job.done if job.status != CardJobStatus.SUCCEEDED else job.total,
        "total": job.total,
        "percent": job.percent,
        "label": label,
        "finished": job.status in (CardJobStatus.SUCCEEDED, CardJobStatus.FAILED)
        or job.is_interrupted,
        "resumable": False,
        "batch_url": batch_url,
        "link_url": batch_url,
        "link_text": "Open the batch",
    }


def _reseller_name(reseller_id) -> str:
    if reseller_id is None:
        return NO_RESELLER
    reseller = Reseller.objects.filter(pk=reseller_id).first()
    return reseller.name if reseller else f"Reseller #{reseller_id} (deleted)"


def _moment(iso: str) -> str:
    try:
        return moment_text(dt.datetime.fromisoformat(iso))
    except (TypeError, ValueError):
        return str(iso)


def search_text(filters: dict) -> str:
    """The Advanced Search a job reruns, with the form's labels: "Series: 7; Status: New"."""
    parts = []
    for name, value in filters.items():
        if value in ("", None):
            continue
        field = CardFilter.base_filters.get(name)
        label = field.label if field is not None and field.label else name
        if name == "reseller":
            value = _reseller_name(int(value)) if str(value).isdigit() else value
        elif name == "status" and value in CardStatus.values:
            value = CardStatus(value).label
        parts.append(f"{label}: {value}")
    return "; ".join(parts) or "every card"


def _changes_rows(changes: dict) -> list[tuple[str, str]]:
    rows = []
    if changes.get("expires_at") == EXPIRED_NOW:
        rows.append(("Expiry Date", "expire now (the cards still running expire when it runs)"))
    elif "expires_at" in changes:
        rows.append(("Expiry Date", f"set to {_moment(changes['expires_at'])}"))
    if "reseller" in changes:
        rows.append(("Company", f"set to {_reseller_name(changes['reseller'])}"))
    if "blocked" in changes:
        rows.append(("Block", "block the cards" if changes["blocked"] else "unblock the cards"))
    return rows


def job_parameters(job: CardJob) -> list[tuple[str, str]]:
    """What the operator asked for, as (label, value) rows in the screens' own words."""
    params = job.params or {}
    if job.kind == CardJobKind.IMPORT:
        rows = [
            ("File", params.get("file_name", "")),
            ("Rows", f"about {count_text(job.total, 'row')}"),
            ("Step", "import" if params.get("stage") == IMPORT_WRITE else "check (preview)"),
        ]
        if params.get("check_job"):
            check_url = reverse("admin:cards_cardjob_change", args=[params["check_job"]])
            rows.append(
                (
                    "Checked by",
                    format_html('<a href="{}">job {}</a>', check_url, params["check_job"]),
                )
            )
        return rows
    if job.kind == CardJobKind.GENERATE:
        return [
            ("Series", str(params.get("series", ""))),
            ("Quantity", cards_text(int(params.get("quantity", job.total)))),
            ("Amount", f"{format_amount(params.get('amount'), 2)} {params.get('currency', '')}"),
            ("PIN Length", f"{params.get('pin_length')} digits"),
            ("Reseller", _reseller_name(params.get("reseller_id"))),
            ("Expiry Date", _moment(params.get("expires_at"))),
        ]
    verb = "to delete" if job.kind == CardJobKind.DELETE_ALL else "that can change"
    rows = [
        ("Search", search_text(params.get("filters", {}))),
        ("Cards", f"{cards_text(int(params.get('expected', job.total)))} {verb}"),
    ]
    if params.get("reseller_id") is not None:
        rows.append(("Limited to", _reseller_name(params["reseller_id"])))
    rows += _changes_rows(params.get("changes", {}))
    if params.get("delete_ids"):
        rows.append(("Marked to delete", cards_text(len(params["delete_ids"]))))
    return rows


def job_outcome(job: CardJob) -> str:
    """How the job ended, in words; "—" while it is queued or running."""
    if job.is_interrupted:
        return job_state(job)["label"]
    if job.status == CardJobStatus.FAILED:
        return job.error
    if job.status != CardJobStatus.SUCCEEDED:
        return "—"
    if job.kind == CardJobKind.IMPORT:
        return job_state(job)["label"]
    if job.kind == CardJobKind.GENERATE:
        created = f"{cards_text(job.total)} created"
        if job.batch is not None:
            created += f": {job.batch.first_serial} … {job.batch.last_serial}"
        return created
    result = job.result or {}
    summary = mass_edit_summary(result.get("changed", {}), result.get("deleted"))
    return summary + _left_as_they_were(result)


@admin.register(CardJob)
class CardJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "kind", "status_label", "progress", "requested_by", "created_at"]
    list_select_related = ["requested_by"]
    change_form_template = "admin/cards/cardjob/change_form.html"
    list_filter = ["kind"]
    # The request and its outcome in words; the raw params/result JSON stays in the database.
    fields = [
        "kind",
        "status_label",
        "requested_by",
        "parameters",
        "outcome",
        "batch",
        "created_at",
        "started_at",
        "finished_at",
    ]
    readonly_fields = fields

    class Media:
        css = {"all": ["cards/admin.css"]}

    def has_view_permission(self, request, obj=None):
        # Who may mass edit or delete cards follows their own jobs (the queryset narrows kinds).
        return super().has_view_permission(request, obj) or any(
            request.user.has_perm(perm)
            for perm in ("cards.change_topupcard", "cards.delete_topupcard", "cards.add_topupcard")
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
            path(
                "<int:job_id>/resume/",
                self.admin_site.admin_view(self.resume_view),
                name="cards_cardjob_resume",
            ),
            path(
                "<int:job_id>/import/",
                self.admin_site.admin_view(self.import_confirm_view),
                name="cards_cardjob_import_confirm",
            ),
            *super().get_urls(),
        ]

    def resume_view(self, request, job_id: int):
        """Resume a stopped Mass Edit / Delete all (POST): whoever sees the job may, since they
        hold its permission; it carries on as the operator who started it."""
        job = get_object_or_404(self.get_queryset(request), pk=job_id)
        page = reverse("admin:cards_cardjob_change", args=[job.pk])
        if request.method != "POST":
            return HttpResponseRedirect(page)
        try:
            job = mass_job_resume(job=job, actor=request.user)
        except CardEditError as error:
            self.message_user(request, error.message, messages.ERROR)
        else:
            self.message_user(
                request, f"Resumed: the other {cards_text(job.left)} are queued.", messages.SUCCESS
            )
        return HttpResponseRedirect(page)

    def progress_view(self, request, job_id: int):
        if not self.has_view_permission(request):
            return JsonResponse({"error": "Not allowed."}, status=403)
        return JsonResponse(job_state(get_object_or_404(self.get_queryset(request), pk=job_id)))

    def import_confirm_view(self, request, job_id: int):
        """The operator confirms the preview of a checked file: its import is queued (a POST;
        who uploaded it only, cards.jobs.imports.import_confirmable)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = get_object_or_404(self.get_queryset(request), pk=job_id)
        try:
            imported = import_job_confirm(job=job, actor=request.user)
        except ImportRefused as error:
            messages.error(request, error.message)
            return HttpResponseRedirect(reverse("admin:cards_cardjob_change", args=[job.pk]))
        messages.info(request, "The import is queued: the cards appear all at once when it ends.")
        return HttpResponseRedirect(reverse("admin:cards_cardjob_change", args=[imported.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        job = self.get_object(request, object_id)
        if job is not None:  # else the admin's "doesn't exist" redirect
            extra["job_state"] = job_state(job)
            extra["import_preview"] = import_preview(job, request.user)
            extra["progress_url"] = reverse("admin:cards_cardjob_progress", args=[job.pk])
            extra["resume_url"] = reverse("admin:cards_cardjob_resume", args=[job.pk])
        return super().change_view(request, object_id, form_url, extra)

    @admin.display(description="Status")
    def status_label(self, job):
        return "interrupted" if job.is_interrupted else job.get_status_display()

    @admin.display(description="Request")
    def parameters(self, job):
        return format_html(
            '<dl class="job-params">{}</dl>',
            format_html_join("", "<dt>{}</dt><dd>{}</dd>", job_parameters(job)),
        )

    @admin.display(description="Outcome")
    def outcome(self, job):
        return job_outcome(job)

    @admin.display(description="Progress")
    def progress(self, job):
        return format_html(
            '<progress max="100" value="{}"></progress> {}%', job.percent, job.percent
        )
