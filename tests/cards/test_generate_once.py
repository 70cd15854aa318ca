"""Generate Top-Up Cards submitted twice (a double click, a resubmit, two tabs) makes one batch
(common/once.py): the second submission says so and generates nothing."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from cards.models import CardBatch, CardJob, TopUpCard
from tests.cards.admin_helpers import snapshot

pytestmark = pytest.mark.django_db
URL = reverse("admin:cards_topupcard_generate")


def rendered_token(page) -> str:
    match = re.search(rb'name="submission_token" value="([A-Za-z0-9_-]{32})"', page.content)
    return match.group(1).decode() if match else ""  # none: the effect tells


def form(token: str, **overrides) -> dict:
    return {
        "amount": "8.00",
        "currency": "USD",
        "quantity": "5",
        "series": "4",
        "pin_length": "12",
        "reseller": "none",
        "expires_at": (timezone.now() + dt.timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S"),
        "_ok": "OK",
        "submission_token": token,
        **overrides,
    }


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_generate_submitted_twice_makes_one_batch(admin_client):
    data = form(rendered_token(admin_client.get(URL)))

    first = admin_client.post(URL, data, follow=True)
    before = (snapshot(CardBatch), snapshot(TopUpCard))
    second = admin_client.post(URL, data, follow=True)

    batch = CardBatch.objects.get()
    assert first.redirect_chain[-1][0] == reverse("admin:cards_cardbatch_change", args=[batch.pk])
    assert second.redirect_chain[-1][0] == reverse("admin:cards_cardbatch_changelist")
    assert any("already submitted" in m for m in messages_of(second))
    assert (snapshot(CardBatch), snapshot(TopUpCard)) == before
    assert TopUpCard.objects.count() == 5


def test_a_background_generation_submitted_twice_queues_one_job(admin_client, settings):
    settings.GENERATION_SYNC_LIMIT = 3
    data = form(rendered_token(admin_client.get(URL)))

    admin_client.post(URL, data)
    second = admin_client.post(URL, data, follow=True)

    assert CardJob.objects.count() == 1
    assert any("already submitted" in m for m in messages_of(second))


def test_a_refused_generation_keeps_its_token_and_the_corrected_form_generates(admin_client):
    token = rendered_token(admin_client.get(URL))

    refused = admin_client.post(URL, form(token, series="not a series!"))
    corrected = admin_client.post(URL, form(token), follow=True)

    assert refused.status_code == 200 and rendered_token(refused) == token
    assert corrected.redirect_chain[-1][0].startswith("/admin/cards/cardbatch/")
    assert CardBatch.objects.count() == 1


def test_the_form_opened_again_generates_again(admin_client):
    for _ in range(2):
        admin_client.post(URL, form(rendered_token(admin_client.get(URL))))

    assert CardBatch.objects.count() == 2
