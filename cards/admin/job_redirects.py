"""The job pages' addresses under the model's earlier name, /admin/cards/generationjob/…: links
kept from before, and job pages still open in a browser (which poll `<id>/progress/`), are
redirected to the same page of /admin/cards/cardjob/. Included by config/urls.py ahead of the
admin, which would answer 404."""

from django.http import HttpResponseRedirect
from django.urls import path, reverse


def to_card_job(request, rest: str = ""):
    url = reverse("admin:cards_cardjob_changelist") + rest
    query = request.META.get("QUERY_STRING", "")
    return HttpResponseRedirect(f"{url}?{query}" if query else url)


urlpatterns = [
    path("", to_card_job),
    path("<path:rest>", to_card_job),
]
