"""Mass Edit refuses an expiry in the past, as Generate does, in the service (so the background
job refuses too) and beside the field; "expire now" ends cards on purpose, after its own tick.

On the old main "set to 2020-01-01" expired the whole selection without a word."""

import datetime as dt
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from django.utils import timezone

from cards.exceptions import CardEditError
from cards.jobs.mass import mass_edit_job_start
from cards.models import CardEvent, CardJob, TopUpCard
from cards.models.events import CardEventKind
from cards.models.jobs import CardJobStatus
from cards.services.mass_edit import EXPIRE_NOW, PAST_EXPIRY, cards_mass_update
from cards.services.selection import cards_selection_edit
from tests.cards.admin_helpers import snapshot
from tests.cards.test_jobs import run_worker
from tests.factories import TopUpCardFactory

MASS_EDIT = reverse("admin:cards_topupcard_mass_edit")
LATER = dt.datetime(2031, 6, 30, 12, tzinfo=dt.UTC)


def url(**search):
    return MASS_EDIT + "?" + urlencode(search)


def edit(**fields):
    data = {"expires_action": "preserve", "reseller_action": "preserve", "block_action": "preserve"}
    return {**data, **fields}


def everything():
    return snapshot(TopUpCard), snapshot(CardEvent)


@pytest.fixture
def box(db, subscriber):
    """Five running cards of series 3, one already expired, one activated."""
    running = [TopUpCardFactory(series="3", number=n, expires_at=LATER) for n in range(1, 6)]
    expired_at = timezone.now() - dt.timedelta(days=3)
    expired = TopUpCardFactory(series="3", number=6, expires_at=expired_at)
    activated = TopUpCardFactory(
        series="3",
        number=7,
        expires_at=LATER,
        activated_at=timezone.now(),
        activated_by=subscriber,
    )
    return {"running": running, "expired": expired, "activated": activated}


# --- the service (what the job and every caller go through) ----------------------------------


@pytest.mark.parametrize("when", [dt.datetime(2020, 1, 1, tzinfo=dt.UTC), "now", "a second ago"])
def test_the_service_refuses_an_expiry_that_is_not_in_the_future(box, when):
    expires_at = {
        "now": timezone.now(),
        "a second ago": timezone.now() - dt.timedelta(seconds=1),
    }.get(when, when)
    before = everything()

    with pytest.raises(CardEditError) as error:
        cards_mass_update(cards=TopUpCard.objects.all(), expires_at=expires_at, actor=None)

    assert error.value.field == "expires_at"
    assert error.value.message == PAST_EXPIRY
    assert everything() == before


def test_the_selection_service_refuses_it_before_deleting_the_marked_cards(box):
    before = everything()

    with pytest.raises(CardEditError):
        cards_selection_edit(
            cards=TopUpCard.objects.all(),
            changes={"expires_at": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)},
            delete_ids=[box["running"][0].pk],
            actor=None,
        )

    assert everything() == before


def test_a_future_expiry_is_still_set(box):
    result = cards_mass_update(
        cards=TopUpCard.objects.all(), expires_at=LATER.replace(year=2032), actor=None
    )

    assert result.changed == {"expires_at": 6}


def test_expire_now_ends_the_running_cards_only(box):
    started = timezone.now()

    result = cards_mass_update(cards=TopUpCard.objects.all(), expires_at=EXPIRE_NOW, actor=None)

    assert result.changed == {"expires_at": 5}
    for card in box["running"]:
        card.refresh_from_db()
        assert started <= card.expires_at <= timezone.now()
        assert card.status == "expired"
    expired, activated = box["expired"], box["activated"]
    assert TopUpCard.objects.get(pk=expired.pk).expires_at == expired.expires_at
    assert TopUpCard.objects.get(pk=activated.pk).expires_at == LATER
    assert CardEvent.objects.filter(kind=CardEventKind.EDITED).count() == 5


# --- the admin: beside the field, and "expire now" with its own tick ---------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("step", [{}, {"_confirm": "1"}])
def test_mass_edit_says_why_beside_the_expiry_field_and_changes_nothing(admin_client, box, step):
    before = everything()

    response = admin_client.post(
        url(serial_from="3"),
        {**edit(expires_action="set", expires_at="2020-01-01 00:00"), **step},
    )

    assert response.status_code == 200
    assert response.context["form"].errors["expires_at"] == [PAST_EXPIRY]
    assert response.context["preview"] is None
    assert everything() == before


@pytest.mark.django_db
def test_expire_now_previews_then_needs_its_own_tick(admin_client, box):
    before = everything()
    data = edit(expires_action="expire")

    preview = admin_client.post(url(serial_from="3"), data)
    untick = admin_client.post(url(serial_from="3"), {**data, "_confirm": "1"})

    html = preview.content.decode()
    assert ("Expire now: nobody can redeem them afterwards", 5) in preview.context["preview"][
        "lines"
    ]
    assert 'name="confirm_expire"' in html and 'type="checkbox"' in html
    assert untick.status_code == 200
    assert untick.context["form"].errors["confirm_expire"]
    assert everything() == before

    done = admin_client.post(
        url(serial_from="3"), {**data, "_confirm": "1", "confirm_expire": "on"}, follow=True
    )

    assert "Mass Edit done" in done.content.decode()
    assert TopUpCard.objects.filter(expires_at__lte=timezone.now()).count() == 6


@pytest.mark.django_db
def test_one_card_s_page_refuses_a_past_expiry_beside_the_field(admin_client, box):
    card = box["running"][0]
    before = everything()
    page = reverse("admin:cards_topupcard_change", args=[card.pk])

    response = admin_client.post(
        page,
        {
            "reseller": card.reseller_id,
            "expires_at_0": "2020-01-01",
            "expires_at_1": "00:00:00",
        },
    )

    assert response.status_code == 200
    assert PAST_EXPIRY in response.context["adminform"].form.errors["expires_at"]
    assert everything() == before


# --- the background job ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_job_refuses_an_expiry_that_has_passed_when_it_runs(admin_user, monkeypatch):
    TopUpCardFactory.create_batch(3, series="3", reseller=None, expires_at=LATER)
    soon = timezone.now() + dt.timedelta(hours=1)
    job = mass_edit_job_start(
        filters={"series": "3"}, expected=3, changes={"expires_at": soon}, actor=admin_user
    )
    before = everything()
    # The worker runs it after the chosen expiry has passed.
    later = soon + dt.timedelta(minutes=1)
    monkeypatch.setattr("cards.services.mass_edit.timezone.now", lambda: later)

    run_worker()

    job.refresh_from_db()
    assert job.status == CardJobStatus.FAILED
    assert everything() == before


@pytest.mark.django_db(transaction=True)
def test_expire_now_runs_as_a_job_at_the_worker_s_time(admin_user):
    TopUpCardFactory.create_batch(3, series="3", reseller=None, expires_at=LATER)
    job = mass_edit_job_start(
        filters={"series": "3"},
        expected=3,
        changes={"expires_at": EXPIRE_NOW},
        actor=admin_user,
    )
    queued = timezone.now()

    run_worker()

    job.refresh_from_db()
    assert job.status == CardJobStatus.SUCCEEDED
    assert all(queued <= c.expires_at <= timezone.now() for c in TopUpCard.objects.all())
    assert CardJob.objects.count() == 1


@pytest.mark.django_db
def test_one_card_s_page_uses_jerasoft_s_labels(admin_client, box):
    card = box["running"][0]

    html = admin_client.get(reverse("admin:cards_topupcard_change", args=[card.pk])).content
    text = html.decode()

    for label in ("Serial Number", "PIN Code", "Reseller", "Expiry Date", "Created on"):
        assert f">{label}:</label>" in text or f">{label}</label>" in text, label
    assert "Expires at" not in text and "Created at" not in text
