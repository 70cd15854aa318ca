"""The custom screens of Top-up Cards: Generate, Advanced Search (POST), Mass Edit, Delete all,
PIN reveal and the CSV export.

Each view follows Django's UserAdmin recipe: an explicit permission check, a form that only
validates, one service call (now, or a background job when `runs_in_background` says so), a
message and a redirect.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import localize
from django.utils.html import format_html
from django.utils.http import MAX_URL_LENGTH

from cards.exceptions import CardEditError, GenerationError
from cards.filters import remember_digests, remember_refusal
from cards.forms import GenerateCardsForm, MassEditForm, reseller_choice
from cards.jobs.generation import generation_job_start
from cards.jobs.mass import delete_all_job_start, mass_edit_job_start
from cards.jobs.runner import runs_in_background
from cards.models import CardJob
from cards.models.jobs import CardJobKind
from cards.pins import format_pin
from cards.selectors import (
    InvalidCardSearch,
    batches_visible_to,
    card_list,
    series_proposals,
)
from cards.services.generation import card_batch_generate
from cards.services.mass_edit import EXPIRE_NOW
from cards.services.pin_search import card_pin_search
from cards.services.reveal import card_pin_reveal
from cards.services.selection import cards_selection_delete, cards_selection_edit
from common.http import client_ip
from common.once import AlreadySubmitted, form_token, posted_token
from common.replicas import stale_ok_view
from subscribers.selectors import staff_reseller
from wallets.services.submissions import submitted_once

from .changelist import (
    CappedCountPaginator,
    page_size,
    search_params,
    search_query_string,
    selection_params,
)
from .display import activated_text, cards_text, created_text, mass_edit_summary, status_badge
from .downloads import csv_response, export_refused, offer_download


class CardScreens:
    """Mixed into TopUpCardAdmin: its extra URLs and views."""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("generate/", view(self.generate_view), name="cards_topupcard_generate"),
            path("search/", view(self.search_view), name="cards_topupcard_search"),
            path("mass-edit/", view(self.mass_edit_view), name="cards_topupcard_mass_edit"),
            path(
                "mass-edit/delete/",
                view(self.delete_all_view),
                name="cards_topupcard_delete_all",
            ),
            path(
                "export-csv/",
                view(stale_ok_view(self.export_csv_view)),
                name="cards_topupcard_export_csv",
            ),
            path(
                "<int:pk>/reveal-pin/",
                view(self.reveal_pin_view),
                name="cards_topupcard_reveal_pin",
            ),
            *super().get_urls(),
        ]

    def _render(self, request, template, context):
        return TemplateResponse(
            request,
            f"admin/cards/topupcard/{template}",
            {**self.admin_site.each_context(request), "opts": self.opts, **context},
        )

    def _changelist_url(self, query: str = "") -> str:
        return reverse("admin:cards_topupcard_changelist") + query

    def _back_with_search(self, request, query: str, to: str = "admin:cards_topupcard_changelist"):
        """Redirect to `to` carrying the search. A search too long for a URL (Django refuses to
        redirect past MAX_URL_LENGTH; no valid search is that long) is dropped with a message,
        never shortened: a shortened search could select other cards."""
        url = reverse(to) + query
        if len(url) > MAX_URL_LENGTH:
            messages.error(request, "The search is too long to be valid: it was cleared.")
            url = reverse(to)
        return HttpResponseRedirect(url)

    def generate_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        scoped = staff_reseller(request.user)
        if request.method == "POST" and "_cancel" in request.POST:
            return HttpResponseRedirect(self._changelist_url())
        proposals = series_proposals(user=request.user)
        if request.method == "POST":
            form = GenerateCardsForm(request.POST, scoped=scoped, proposals=proposals)
            if form.is_valid():
                data = form.cleaned_data
                background = runs_in_background(kind=CardJobKind.GENERATE, count=data["quantity"])
                # The job takes the very arguments of the generation it will run.
                generate = generation_job_start if background else card_batch_generate
                try:
                    outcome = submitted_once(
                        token=posted_token(request),
                        actor=request.user,
                        apply=lambda: generate(
                            series=data["series"].strip(),
                            quantity=data["quantity"],
                            amount=data["amount"],
                            currency=data["currency"],
                            pin_length=data["pin_length"],
                            reseller=data["reseller"],
                            expires_at=data["expires_at"],
                            dormant=data["dormant"],
                            actor=request.user,
                        ),
                    )
                except AlreadySubmitted as error:
                    # The first submission's batch (or job) is the newest one of this user.
                    self.message_user(request, error.message, messages.WARNING)
                    return HttpResponseRedirect(reverse("admin:cards_cardbatch_changelist"))
                except (GenerationError, CardEditError) as error:
                    field = error.field if error.field in form.fields else None
                    form.add_error(field, error.message)
                else:
                    if isinstance(outcome, CardJob):
                        return self._job_started(
                            request,
                            outcome,
                            f"Generating {data['quantity']:,} cards in the background: "
                            "this page shows the progress.",
                        )
                    return self._generated(request, outcome.batch)
        else:
            initial = {}
            like = request.GET.get("like", "")
            batch = (
                batches_visible_to(request.user)
                .select_related("reseller")
                .filter(pk=int(like))
                .first()
                if like.isdigit()
                else None
            )
            if batch is not None:
                initial = {
                    "amount": batch.amount,
                    "currency": batch.currency,
                    "quantity": batch.quantity,
                    "series": batch.series,
                    "pin_length": batch.pin_length,
                    "reseller": reseller_choice(batch.reseller),
                    "expires_at": batch.expires_at,
                    "dormant": batch.dormant,
                }
            form = GenerateCardsForm(initial=initial, scoped=scoped, proposals=proposals)
        return self._render(
            request,
            "generate.html",
            {
                "title": "Generate Top-Up Cards",
                "form": form,
                "proposals": proposals,
                "submission_token": form_token(request),
            },
        )

    def _generated(self, request, batch):
        offer_download(request, batch)
        batch_url = reverse("admin:cards_cardbatch_change", args=[batch.pk])
        messages.success(
            request,
            format_html(
                'Generated {} cards: <a href="{}">{} … {}</a>.',
                f"{batch.quantity:,}",
                batch_url,
                batch.first_serial,
                batch.last_serial,
            ),
        )
        if "_apply" in request.POST:
            url = reverse("admin:cards_topupcard_generate")
            return HttpResponseRedirect(f"{url}?{urlencode({'like': batch.pk})}")
        return HttpResponseRedirect(batch_url)

    def search_view(self, request):
        """The Advanced Search form posts here, so a PIN never reaches a URL."""
        if request.method != "POST":
            return HttpResponseRedirect(self._changelist_url())
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        if "_reset" in request.POST:
            return HttpResponseRedirect(self._changelist_url())
        params = search_params(request.POST)
        params.pop("pin_ref", None)
        typed = request.POST.get("pin", "").strip()
        if typed:
            # A PIN that cannot be searched for keeps the search invalid (its reason beside the
            # field, no card selected), never dropped: see cards.filters.remember_refusal.
            try:
                found = card_pin_search(
                    typed=typed, actor=request.user, ip_address=client_ip(request)
                )
            except CardEditError as error:
                params["pin_ref"] = remember_refusal(request.session, error.message)
            else:
                params["pin_ref"] = (
                    remember_refusal(request.session, found.error)
                    if found.error
                    else remember_digests(request.session, found.digests)
                )
        elif request.POST.get("keep_pin_ref"):
            params["pin_ref"] = request.POST["keep_pin_ref"]
        size = request.POST.get("per_page")
        if size:
            params["per_page"] = size
        return self._back_with_search(request, "?" + urlencode(params) if params else "")

    def _selection(self, request):
        """The cards of the current search (carried in the query string), or None if invalid."""
        try:
            return card_list(
                filters=selection_params(request.GET), user=request.user, session=request.session
            )
        except InvalidCardSearch as error:
            messages.error(request, f"The search is not valid: {error}")
            return None

    def mass_edit_view(self, request):
        if not self.has_change_permission(request):
            raise PermissionDenied
        selection = self._selection(request)
        query = search_query_string(request.GET)
        if selection is None:
            return self._back_with_search(request, query)
        scoped = staff_reseller(request.user)
        can_delete = self.has_delete_permission(request)

        def deletable(pks):
            return selection.filter(pk__in=pks, activated_at__isnull=True).values_list(
                "pk", flat=True
            )

        preview = None
        if request.method == "POST":
            form = MassEditForm(request.POST, scoped=scoped, deletable=deletable)
            if form.is_valid() and form.cleaned_data["delete"] and not can_delete:
                form.add_error("delete", "You are not allowed to delete cards.")
            if form.is_valid():
                marked = form.cleaned_data["delete"]
                if "_confirm" in request.POST and form.confirm():
                    return self._apply_mass_edit(request, selection, form, marked, query)
                preview = self._mass_edit_preview(selection, form.changes(), marked)
        else:
            form = MassEditForm(scoped=scoped, deletable=deletable)
        paginator = CappedCountPaginator(
            selection.select_related("reseller", "activated_by"), page_size(request)
        )
        try:
            page_number = int(request.GET.get("p", 1))
        except ValueError:
            page_number = 1
        page = paginator.get_page(page_number)
        marked = set(getattr(form, "cleaned_data", {}).get("delete") or [])
        rows = [
            {
                "card": card,
                "status": status_badge(card),
                "activated": activated_text(card),
                "created_on": created_text(card),
                "marked": card.pk in marked,
            }
            for card in page.object_list
        ]
        return self._render(
            request,
            "mass_edit.html",
            {
                "title": "Mass Edit",
                "form": form,
                "preview": preview,
                "page": page,
                "paginator": paginator,
                "rows": rows,
                "query": query,
                "search_params": search_params(request.GET),
                "can_delete": can_delete,
            },
        )

    def _mass_edit_preview(self, selection, changes, marked) -> dict:
        editable = selection.filter(activated_at__isnull=True).order_by()
        lines = []
        if changes.get("expires_at") is EXPIRE_NOW:
            lines.append(
                (
                    "Expire now: nobody can redeem them afterwards",
                    editable.filter(expires_at__gt=timezone.now()).count(),
                )
            )
        elif "expires_at" in changes:
            new = changes["expires_at"]
            lines.append(
                (
                    f"Expiration Date set to {localize(timezone.localtime(new))}",
                    editable.exclude(expires_at=new).count(),
                )
            )
        if "reseller" in changes:
            new = changes["reseller"]
            lines.append((f"Company set to {new}", editable.exclude(reseller=new).count()))
        if "blocked" in changes:
            blocked = changes["blocked"]
            lines.append(
                (
                    "Block" if blocked else "Unblock",
                    editable.filter(blocked=not blocked).count(),
                )
            )
        if marked:
            lines.append(("Delete the marked cards", len(marked)))
        return {
            "lines": lines,
            "activated": selection.filter(activated_at__isnull=False).order_by().count(),
        }

    def _job_started(self, request, job, message: str):
        messages.success(request, message)
        return HttpResponseRedirect(reverse("admin:cards_cardjob_change", args=[job.pk]))

    def _apply_mass_edit(self, request, selection, form, marked, query):
        changes = form.changes()
        filters = search_params(request.GET)
        try:
            if changes:
                count = selection.filter(activated_at__isnull=True).order_by().count()
                if runs_in_background(kind=CardJobKind.MASS_EDIT, count=count, filters=filters):
                    job = mass_edit_job_start(
                        filters=filters,
                        expected=count,
                        changes=changes,
                        delete_ids=marked,
                        actor=request.user,
                    )
                    return self._job_started(
                        request,
                        job,
                        f"Mass Edit of {cards_text(count)} runs in the background: "
                        "this page shows when it is done.",
                    )
            result = cards_selection_edit(
                cards=selection, changes=changes, delete_ids=marked, actor=request.user
            )
        except CardEditError as error:
            messages.error(request, error.message)
            return self._back_with_search(request, query, to="admin:cards_topupcard_mass_edit")
        summary = mass_edit_summary(result.changed, result.deleted if marked else None)
        messages.success(request, f"Mass Edit done: {summary}.")
        return self._back_with_search(request, query)

    def delete_all_view(self, request):
        if not self.has_delete_permission(request):
            raise PermissionDenied
        selection = self._selection(request)
        query = search_query_string(request.GET)
        if selection is None:
            return self._back_with_search(request, query)
        count = selection.filter(activated_at__isnull=True).order_by().count()
        if request.method == "POST" and "_confirm" in request.POST:
            filters = search_params(request.GET)
            if str(count) != request.POST.get("expected_count"):
                messages.warning(
                    request,
                    f"The selection changed since you looked: it now holds {count:,} cards "
                    "that can be deleted. Confirm again.",
                )
            elif runs_in_background(kind=CardJobKind.DELETE_ALL, count=count, filters=filters):
                job = delete_all_job_start(filters=filters, expected=count, actor=request.user)
                return self._job_started(
                    request,
                    job,
                    f"Deleting {cards_text(count)} runs in the background: "
                    "this page shows when it is done.",
                )
            else:
                deleted = cards_selection_delete(cards=selection, actor=request.user)
                messages.success(request, f"Deleted {cards_text(deleted)}.")
                return self._back_with_search(request, query)
        return self._render(
            request,
            "delete_all.html",
            {
                "title": "Delete all selected cards?",
                "count": count,
                "kept": selection.filter(activated_at__isnull=False).order_by().count(),
                "query": query,
            },
        )

    def export_csv_view(self, request):
        """The streamed CSV of the current search (which may name a series or a batch).

        PINs only with `cards.view_pin` and when asked for (`with_pins=1`); audited either way.
        """
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        selection = self._selection(request)
        query = search_query_string(request.GET)
        if selection is None:
            return self._back_with_search(request, query)
        params = search_params(request.GET)
        description = {k: v for k, v in params.items() if k != "pin_ref"}
        if "pin_ref" in params:
            description["pin"] = "(searched by PIN)"
        name = "cards"
        if params.get("series"):
            name = f"cards-series-{params['series']}"
        if params.get("batch"):
            name = f"cards-batch-{params['batch']}"
        wants_pins = request.GET.get("with_pins") == "1"
        if wants_pins and not request.user.has_perm("cards.view_pin"):
            raise PermissionDenied("You are not allowed to export PINs.")
        if export_refused(request, selection, series=params.get("series", "")):
            return self._back_with_search(request, query)
        return csv_response(
            request,
            selection,
            description=description,
            filename=f"{name}.csv",
            with_pins=wants_pins,
        )

    def reveal_pin_view(self, request, pk):
        if request.method != "POST":
            raise Http404
        if not (
            request.user.has_perm("cards.view_pin") and self.has_view_or_change_permission(request)
        ):
            raise PermissionDenied
        card = get_object_or_404(self.get_queryset(request), pk=pk)
        try:
            pin = card_pin_reveal(card=card, actor=request.user, ip_address=client_ip(request))
        except CardEditError as error:
            raise PermissionDenied(error.message) from None
        if request.headers.get("Accept", "").startswith("application/json"):
            response = JsonResponse({"serial": card.serial, "pin": format_pin(pin)})
        else:
            response = self._render(
                request,
                "reveal_pin.html",
                {"title": f"PIN of card {card.serial}", "card": card, "pin": format_pin(pin)},
            )
        response["Cache-Control"] = "no-store"
        return response
