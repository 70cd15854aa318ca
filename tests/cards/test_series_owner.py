"""Series belong to the reseller that first used them (docs/cards.md, "Serial number"): nobody
generates or imports cards of another reseller (or of no reseller) into them."""

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from cards.exceptions import GenerationError
from cards.jobs.generation import generation_job_start
from cards.models import CardBatch, CardEvent, CardJob, CardSeries, TopUpCard
from cards.services.generation import card_batch_generate
from cards.services.scope import series_claim
from subscribers.models import StaffReseller
from tests.cards.admin_helpers import CARD_PERMS, operator, snapshot
from tests.factories import ResellerFactory, TopUpCardFactory

pytestmark = pytest.mark.django_db

GENERATE = reverse("admin:cards_topupcard_generate")
IMPORT = reverse("admin:cards_topupcard_import")


def form(**overrides):
    data = {
        "amount": "8.00",
        "currency": "USD",
        "quantity": "5",
        "series": "4",
        "pin_length": "12",
        "reseller": "none",
        "expires_at": (timezone.now() + dt.timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S"),
        "_ok": "OK",
    }
    data.update(overrides)
    return data


def everything():
    return snapshot(TopUpCard), snapshot(CardBatch), snapshot(CardEvent), snapshot(CardJob)


@pytest.fixture
def resellers():
    return ResellerFactory(name="Mine"), ResellerFactory(name="Theirs")


@pytest.fixture
def scoped_client(client, resellers):
    user = operator(*CARD_PERMS, "view_pin", username="scoped")
    StaffReseller.objects.create(user=user, reseller=resellers[0])
    client.force_login(user)
    return client


@pytest.mark.parametrize("owner", ["theirs", "none"])
def test_scoped_staff_cannot_generate_into_a_series_someone_else_uses(
    scoped_client, resellers, owner
):
    mine, theirs = resellers
    TopUpCardFactory(series="4", number=1, reseller=theirs if owner == "theirs" else None)
    before = everything()

    response = scoped_client.post(GENERATE, form(reseller=str(mine.pk)))

    assert response.status_code == 200
    assert response.context["form"].errors["series"] == [
        "Series 4 is used by another company: choose another series."
    ]
    assert "Theirs" not in response.content.decode()
    assert everything() == before


def test_scoped_staff_generate_into_their_own_series_and_claim_new_ones(scoped_client, resellers):
    mine, _ = resellers
    TopUpCardFactory(series="4", number=1, reseller=mine)

    for series in ("4", "5"):
        response = scoped_client.post(GENERATE, form(series=series, reseller=str(mine.pk)))
        assert response.status_code == 302

    assert TopUpCard.objects.filter(series="4").count() == 6
    assert CardSeries.objects.get(series="5").reseller == mine


def test_unscoped_staff_are_refused_too_and_told_whose_series_it_is(admin_client, resellers):
    mine, theirs = resellers
    TopUpCardFactory(series="4", number=1, reseller=theirs)
    TopUpCardFactory(series="6", number=1, reseller=None)
    before = everything()

    other = admin_client.post(GENERATE, form(reseller=str(mine.pk)))
    unowned = admin_client.post(GENERATE, form(series="6", reseller=str(mine.pk)))

    assert other.context["form"].errors["series"] == [
        "Series 4 belongs to Theirs: choose another series, or Theirs as the reseller."
    ]
    assert unowned.context["form"].errors["series"] == [
        "Series 6 holds cards without a reseller: choose another series, or leave the reseller "
        "empty."
    ]
    assert everything() == before


def test_a_background_generation_follows_the_rule_when_queued_and_when_run(resellers, settings):
    mine, theirs = resellers
    TopUpCardFactory(series="4", number=1, reseller=theirs)
    params = {
        "quantity": 3,
        "amount": "5.00",
        "currency": "USD",
        "pin_length": 12,
        "reseller": mine,
        "expires_at": timezone.now() + dt.timedelta(days=9),
        "actor": None,
    }
    before = everything()

    with pytest.raises(GenerationError, match="Series 4 belongs to Theirs") as refused:
        generation_job_start(series="4", **params)
    assert refused.value.field == "series" and everything() == before

    # Queued while series 7 was free, then someone else's batch claimed it first.
    generation_job_start(series="7", **params)
    series_claim(actor=None, series="7", reseller=theirs)
    with pytest.raises(GenerationError, match="Series 7 belongs to Theirs"):
        card_batch_generate(series="7", **params)
    assert not TopUpCard.objects.filter(series="7").exists()


def test_an_import_cannot_put_cards_into_another_resellers_series(admin_client, resellers):
    mine, theirs = resellers
    TopUpCardFactory(series="4", number=1, reseller=theirs)
    text = (
        "Serial Number,Amount,Currency,PIN Code,Reseller,Expiry Date\n"
        "4-000000002,10.00,USD,555566667777,Mine,2030-01-01\n"
        "30-000000001,10.00,USD,555566668888,Mine,2030-01-01\n"
        "30-000000002,10.00,USD,555566669999,,2030-01-01\n"  # the file claimed 30 for Mine
    )
    before = everything()

    preview = admin_client.post(
        IMPORT,
        {
            "resource": "0",
            "format": "0",
            "import_file": SimpleUploadedFile("cards.csv", text.encode(), "text/csv"),
        },
    )

    errors = {row.number: row.error_dict for row in preview.context["result"].invalid_rows}
    assert errors == {
        1: {
            "serial": [
                "Series 4 belongs to Theirs: choose another series, or Theirs as the reseller."
            ]
        },
        3: {
            "serial": ["Series 30 belongs to Mine: choose another series, or Mine as the reseller."]
        },
    }
    assert preview.context.get("confirm_form") is None
    cards, batches, _events, jobs = everything()
    assert (cards, batches, jobs) == (before[0], before[1], before[3])
    assert list(CardEvent.objects.values_list("kind", flat=True)) == ["pins_checked"]
    assert not CardSeries.objects.filter(series="30").exists()  # the preview claimed nothing
